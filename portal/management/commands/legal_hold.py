from django.core.management.base import BaseCommand, CommandError

from portal.exceptions import RetentionRefused
from portal.services.legal_hold import release_legal_hold, set_legal_hold


class Command(BaseCommand):
    help = "Place (--set --reason TEXT) or release (--release) a legal hold on stored files."

    def add_arguments(self, parser):
        parser.add_argument("file_ids", nargs="+", metavar="FILE_ID")
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--set", action="store_true", help="Place a hold.")
        action.add_argument("--release", action="store_true", help="Release the hold.")
        parser.add_argument("--reason", default="", help="Why (required with --set).")

    def handle(self, *args, file_ids, set, release, reason, **options):
        if set and not reason.strip():
            raise CommandError("--reason is required with --set.")
        try:
            if set:
                result = set_legal_hold(file_ids=file_ids, reason=reason)
            else:
                result = release_legal_hold(file_ids=file_ids, reason=reason)
        except RetentionRefused as exc:
            raise CommandError(f"FILE_ID: {exc.message}") from exc
        verb = "Held" if set else "Released"
        self.stdout.write(f"{verb} {result.changed} file(s); {result.unchanged} already were.")
