from django.core.management.base import BaseCommand, CommandError

from portal.exceptions import InvalidRetentionClass
from portal.services.policies import apply_retention


class Command(BaseCommand):
    help = "Recompute expires_at of a retention class's stored files from its current policy."

    def add_arguments(self, parser):
        parser.add_argument("code", metavar="CODE", help="The retention class (policy code).")
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")

    def handle(self, *args, code, dry_run, **options):
        try:
            result = apply_retention(code=code, dry_run=dry_run)
        except InvalidRetentionClass as exc:
            raise CommandError(f"CODE: {exc.message}") from exc
        mode = " (dry run: nothing changed)" if result.dry_run else ""
        self.stdout.write(
            f"{result.policy}: {result.files} stored file(s); {result.earlier} earlier, "
            f"{result.later} later, {result.due} become due{mode}."
        )
