#!/usr/bin/env python
"""Django's command-line utility for the ingest portal."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boot.settings")
    os.environ.setdefault("DJANGO_CONFIGURATION", "Dev")
    from configurations import importer
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    importer.install(check_options=True)
    try:
        settings.INSTALLED_APPS  # noqa: B018 - loads the configuration now
    except ImproperlyConfigured as exc:
        # A bad environment variable: one clear line, not a traceback wall.
        sys.stderr.write(f"Configuration error: {exc}\n")
        sys.exit(2)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
