import json

from django.core.management.base import BaseCommand, CommandError

from portal.selectors.compliance import parse_day
from portal.services.reconcile import verify_deletions


class Command(BaseCommand):
    help = (
        "Check that every deleted file's object (FileDeletion) is absent from storage; "
        "lists any found again and exits non-zero."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", help="YYYY-MM-DD: only deletions from that day on.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, since, **options):
        try:
            start = parse_day(since, "--since") if since else None
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        check = verify_deletions(since=start)
        if options["json"]:
            self.stdout.write(json.dumps(check.as_dict(), indent=2))
        else:
            self.stdout.write(render_text(check))
        if not check.ok:
            raise CommandError(f"{check.found} deleted object(s) present in storage")


def render_text(check) -> str:
    since = f" since {check.since:%Y-%m-%d}" if check.since else ""
    lines = [
        f"Deletions{since}: {check.checked} checked, {check.found} present in storage,"
        f" {check.unchecked} of another storage not checked."
    ]
    lines += [f"  PRESENT {item['file_id']} {item['key']}" for item in check.present]
    lines.append("Verified: every checked object is absent." if check.ok else "NOT VERIFIED")
    return "\n".join(lines)
