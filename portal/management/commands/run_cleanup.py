import json

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
        self.stdout.write(render_json(report) if json else render_summary(report))
        if not report.ok:
            # Non-zero exit, so cron and CI notice a partial or failed run.
            raise CommandError(f"cleanup finished {report.status}")


def render_json(report) -> str:
    return json.dumps(report.as_dict(), indent=2)


def render_summary(report) -> str:
    """A few lines for a terminal: status, each step's counts, each recorded error."""
    if report.status == "skipped":
        return f"Cleanup skipped: {report.skipped_reason}. Run {report.run_id}."
    mode = " (dry run)" if report.dry_run else ""
    lines = [f"Cleanup {report.status}{mode} in {report.duration_ms} ms. Run {report.run_id}."]
    for step, counts in report.counts.items():
        if step != "total":
            lines.append(f"  {step}: " + ", ".join(f"{name} {n}" for name, n in counts.items()))
    for error in report.errors:
        item = f" {error['item']}" if error.get("item") else ""
        lines.append(f"  error: {error['step']}{item}: {error['error']}")
    return "\n".join(lines)
