import json

from django.core.management.base import BaseCommand, CommandError

from portal.selectors.compliance import deletion_log


class Command(BaseCommand):
    help = "What was deleted, when, why, and by which run or operator (newest first)."

    def add_arguments(self, parser):
        query = parser.add_mutually_exclusive_group(required=True)
        query.add_argument("--file", dest="file_id", help="A file id.")
        query.add_argument("--key", help="An exact storage key.")
        query.add_argument("--filename", help="Part of the original file name (any case).")
        parser.add_argument("--json", action="store_true", help="Print the log as JSON.")

    def handle(self, *args, file_id, key, filename, **options):
        try:
            log = deletion_log(file_id=file_id, key=key, filename=filename)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(log.as_dict(), indent=2))
        else:
            self.stdout.write(render_text(log))


def render_text(log) -> str:
    query = ", ".join(f"{name} {value}" for name, value in log.query.items())
    lines = [f"Deletions matching {query}: {len(log.entries)}"]
    if log.file_status:
        lines.append(f"  The file's row exists; its status is {log.file_status}.")
    for entry in log.entries:
        by = entry["by"]
        who = f"cleanup run {by['run']}" if "run" in by else f"operator {by['operator'] or '?'}"
        lines += [
            f"- {entry['file_id']} {entry['filename']} ({entry['size_bytes']} bytes)",
            f"    deleted {entry['deleted_at']} by {who}, reason {entry['reason']}"
            + (f": {entry['note']}" if entry["note"] else ""),
            f"    class {entry['retention_class'] or '(none)'}"
            f" ({entry['retention_period_days']} days), stored {entry['stored_at']},"
            f" expired {entry['expires_at']}, notified {entry['notified_at']}",
            f"    {entry['storage']['backend']} {entry['storage']['bucket']} {entry['storage']['key']}",
        ]
    return "\n".join(lines)
