"""Columns and read-only fields an operator can scan: humanized durations, times to the
second, a neutral live/dry marker, filenames on session lists, statuses as they are.

Mixed into the ModelAdmins of ``cleanup.py`` and ``uploads.py``.
"""

from django.contrib import admin
from django.template.loader import render_to_string
from django.utils.html import format_html

from portal.admin import display
from portal.models import CleanupRun, UploadFile, UploadSession
from portal.selectors.dashboard import STEP_COLUMNS, requested_by, step_rows


def _status(value: str, label: str | None = None):
    return format_html(
        '<span class="portal-status portal-status-{}">{}</span>', value, label or value
    )


def _nowrap(value):
    return format_html('<span class="portal-nowrap">{}</span>', value)


def moment_column(field: str, description: str, *, nowrap: bool = False):
    """A sortable column showing the time in ``field`` to the second."""

    @admin.display(description=description, ordering=field)
    def column(self, obj):
        moment = display.moment(getattr(obj, field))
        return _nowrap(moment) if nowrap else moment

    return column


class CleanupRunColumns:
    started = moment_column("started_at", "started", nowrap=True)
    finished = moment_column("finished_at", "finished")

    @admin.display(description="mode", ordering="dry_run")
    def mode(self, run):
        return display.mode_marker(run.dry_run)

    @admin.display(description="status", ordering="status")
    def run_status(self, run):
        return _status(run.status)

    @admin.display(description="duration")
    def run_duration(self, run):
        return _nowrap(display.duration(run.duration))

    @admin.display(description="requested by")
    def requester(self, run):
        return requested_by(run) or display.EMPTY

    @admin.display(description="trigger", ordering="trigger")
    def triggered_by(self, run):
        """The trigger, and for the admin's runs who pressed the button."""
        user = requested_by(run)
        return f"{run.trigger} · {user}" if user else run.trigger

    @admin.display(description="steps")
    def steps(self, run):
        rows = [{"step": row.step, "cells": _cells(row.counts)} for row in step_rows(run)]
        total = run.counts.get("total") if run.counts else None
        return render_to_string(
            "admin/portal/cleanuprun/steps.html",
            {
                "rows": rows,
                "total": _cells({**total, "duration_ms": _ms(run.duration)}) if total else None,
                "skipped": run.status == CleanupRun.Status.SKIPPED,
            },
        )

    @admin.display(description="errors")
    def error_list(self, run):
        return render_to_string("admin/portal/cleanuprun/errors.html", {"errors": run.errors})


def _ms(value):
    return value.total_seconds() * 1000 if value is not None else None


def _cells(counts: dict) -> list[str]:
    """A step's numbers as the run page's cells: sizes and durations humanized, "—" if absent."""
    cells = []
    for name in STEP_COLUMNS:
        value = counts.get(name)
        if value is None:
            cells.append(display.EMPTY)
        elif name == "bytes_reclaimed":
            cells.append(display.size(value))
        elif name == "duration_ms":
            cells.append(display.duration(value))
        else:
            cells.append(f"{value:,}")
    return cells


class CleanupControlColumns:
    updated = moment_column("updated_at", "updated")


class UploadSessionColumns:
    @admin.display(description="id")
    def session_id(self, session):
        """The id's random tail, the whole id on hover (UUIDv7s of one minute share their
        head); the search box and the session's page take the whole id."""
        return format_html(
            '<span class="portal-mono" title="{}">…{}</span>', session.pk, str(session.pk)[-12:]
        )

    @admin.display(description="filename", ordering="file__original_filename")
    def filename(self, session):
        return session.file.original_filename

    @admin.display(description="status", ordering="status")
    def session_status(self, session):
        if session.failure_reason:
            return _status(session.status, f"{session.status} ({session.failure_reason})")
        return _status(session.status)

    @admin.display(description="parts")
    def parts(self, session):
        return _nowrap(f"{session.completed_parts} / {session.total_parts}")

    @admin.display(description="size", ordering="total_size_bytes")
    def size(self, session):
        return _nowrap(display.size(session.total_size_bytes))

    last_activity = moment_column("last_activity_at", "last activity")


class UploadFileColumns:
    @admin.display(description="status", ordering="status")
    def file_status(self, file):
        """The file's status, except that a file whose upload was aborted says so: the
        services mark it failed, but nothing went wrong."""
        session = getattr(file, "session", None)
        if file.status == UploadFile.Status.FAILED and session is not None:
            if session.status == UploadSession.Status.ABORTED:
                return _status("aborted")
            if session.failure_reason:
                return _status("failed", f"failed ({session.failure_reason})")
        return _status(file.status)

    @admin.display(description="size", ordering="size_bytes")
    def size(self, file):
        return _nowrap(display.size(file.size_bytes))

    created = moment_column("created_at", "created", nowrap=True)


class ApiTokenColumns:
    created = moment_column("created_at", "created")
    last_used = moment_column("last_used_at", "last used")
    revoked = moment_column("revoked_at", "revoked")
