"""The retention report in the admin (SPEC §11): the same figures as ``retention_report``,
on a page an auditor can print, or as CSV. Behind the view permission of deletions."""

from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from portal.selectors.compliance import report_period, retention_report


class RetentionReportMixin:
    """Adds ``report/`` to the deletions' admin (``admin:portal_filedeletion_report``)."""

    def get_urls(self):
        report = self.admin_site.admin_view(self.report_view)
        return [path("report/", report, name="portal_filedeletion_report"), *super().get_urls()]

    def report_view(self, request):
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        query = {name: request.GET.get(name) or None for name in ("month", "since", "until")}
        error = ""
        try:
            period = report_period(**query)
        except ValueError as exc:
            error, query, period = str(exc).replace("--", ""), {}, report_period()
        report = retention_report(period=period)
        if request.GET.get("format") == "csv":
            response = HttpResponse(report.as_csv(), content_type="text/csv")
            name = f"retention-report-{period.since:%Y-%m-%d}-{period.until:%Y-%m-%d}.csv"
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
        context = {
            **self.admin_site.each_context(request),
            "title": "Retention compliance report",
            "opts": self.model._meta,
            "report": report,
            "error": error,
            "query": {name: value or "" for name, value in query.items()},
        }
        return TemplateResponse(request, "admin/portal/filedeletion/report.html", context)
