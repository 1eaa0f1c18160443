from django.core.management.base import BaseCommand, CommandError

from portal.services.cleanup import run_cleanup


class Command(BaseCommand):
    help = (
        "Expire stale upload sessions, delete leftover temp parts and orphan objects, "
        "prune old failed sessions and delivered outbox events."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be done; change nothing."
        )
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, dry_run, json, **options):
        report = run_cleanup(trigger="command", dry_run=dry_run or None)
        self.stdout.write(report.to_json() if json else report.summary())
        if not report.ok:
            # Non-zero exit, so cron and CI notice a partial or failed run.
            raise CommandError(f"cleanup finished {report.status}")
