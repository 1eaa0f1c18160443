import json

from django.core.management.base import BaseCommand, CommandError

from portal.services.cleanup import run_cleanup
from portal.services.reconcile import STEP


class Command(BaseCommand):
    help = (
        "Walk the final prefix: delete the portal's own orphan objects (older than the "
        "grace period), mark stored files whose object is gone as missing, count foreign "
        "keys. Recorded as a cleanup run."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would be done; change nothing."
        )
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, dry_run, **options):
        report = run_cleanup(trigger="command", dry_run=dry_run or None, cycle="reconcile")
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self.stdout.write(render_text(report))
        if not report.ok:
            raise CommandError(f"reconciliation finished {report.status}")


def render_text(report) -> str:
    if report.status == "skipped":
        return f"Reconciliation skipped: {report.skipped_reason}. Run {report.run_id}."
    mode = " (dry run: nothing changed)" if report.dry_run else ""
    lines = [
        f"Reconciliation {report.status}{mode} in {report.duration_ms} ms. Run {report.run_id}."
    ]
    counts = report.counts.get(STEP, {})
    lines.append(
        "  "
        + ", ".join(f"{name} {counts[name]}" for name in counts if isinstance(counts[name], int))
    )
    orphan = "orphan (would delete)" if report.dry_run else "orphan deleted"
    lines += [f"  {orphan}: {key}" for key in counts.get("orphan_keys", ())]
    lines += [f"  missing file: {file_id}" for file_id in counts.get("missing_file_ids", ())]
    lines += [f"  foreign (kept): {key}" for key in counts.get("foreign_sample", ())]
    for error in report.errors:
        item = f" {error['item']}" if error.get("item") else ""
        lines.append(f"  error: {error['step']}{item}: {error['error']}")
    return "\n".join(lines)
