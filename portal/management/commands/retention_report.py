import json

from django.core.management.base import BaseCommand, CommandError

from portal.selectors.compliance import report_period, retention_report


class Command(BaseCommand):
    help = (
        "The retention compliance report per class (stored, deleted, failed, on hold, "
        "overdue) for a month or a period; exits non-zero when NOT COMPLIANT."
    )

    def add_arguments(self, parser):
        parser.add_argument("--month", help="YYYY-MM (default: the last full month).")
        parser.add_argument("--since", help="YYYY-MM-DD, inclusive.")
        parser.add_argument("--until", help="YYYY-MM-DD, exclusive (default: now).")
        parser.add_argument("--format", choices=("text", "json", "csv"), default="text")

    def handle(self, *args, month, since, until, format, **options):
        try:
            period = report_period(month=month, since=since, until=until)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        report = retention_report(period=period)
        if format == "json":
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        else:
            self.stdout.write(report.as_csv() if format == "csv" else report.as_text(), ending="")
        if not report.compliant:
            raise CommandError(f"NOT COMPLIANT: {report.overdue} overdue file(s)")
