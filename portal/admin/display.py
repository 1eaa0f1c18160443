"""How the admin writes durations, times, sizes and the live/dry marker."""

from datetime import datetime, timedelta

from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.html import format_html

EMPTY = "—"


def duration(value: timedelta | float | int | None) -> str:
    """A duration (a timedelta, or milliseconds) as people say it: 30 ms, 1.2 s, 4 min 05 s."""
    if value is None:
        return EMPTY
    ms = value.total_seconds() * 1000 if isinstance(value, timedelta) else float(value)
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"


def moment(value: datetime | None) -> str:
    """A time to the second, in the current time zone: two runs a second apart differ."""
    if value is None:
        return EMPTY
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")


def size(value: int | None) -> str:
    return EMPTY if value is None else filesizeformat(value)


def mode_marker(dry_run: bool):
    """ "dry run" or "live" as a neutral label, never the admin's red cross."""
    kind, text = ("dry", "dry run") if dry_run else ("live", "live")
    return format_html('<span class="portal-mode portal-mode-{}">{}</span>', kind, text)
