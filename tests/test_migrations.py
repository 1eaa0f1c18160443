"""The migrations match the models, and the partial indexes cleanup relies on exist."""

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection


def partial_indexes() -> list[tuple[str, str, list[str]]]:
    """(table, index name, columns) of every model index or constraint with a condition."""
    found = []
    for model in apps.get_app_config("portal").get_models():
        meta = model._meta
        for index in [*meta.indexes, *meta.constraints]:
            if getattr(index, "condition", None) is not None:
                columns = [meta.get_field(name.lstrip("-")).column for name in index.fields]
                found.append((meta.db_table, index.name, columns))
    return found


@pytest.mark.django_db  # makemigrations reads the applied-migrations table
def test_models_and_migrations_agree():
    out = StringIO()

    # Raises SystemExit (exit code 1) when a model change has no migration.
    call_command("makemigrations", "portal", check=True, dry_run=True, stdout=out)

    assert "No changes detected" in out.getvalue()


def test_the_models_declare_the_partial_indexes_cleanup_and_the_dispatcher_use():
    names = {name for _, name, _ in partial_indexes()}

    assert {
        "portal_session_active_idx",
        "portal_session_terminal_idx",
        "portal_delivery_due_idx",
        "portal_delivery_done_idx",
    } <= names


@pytest.mark.django_db
def test_migrations_create_every_portal_table():
    tables = set(connection.introspection.table_names())

    assert {model._meta.db_table for model in apps.get_app_config("portal").get_models()} <= tables


@pytest.mark.postgres
@pytest.mark.parametrize(("table", "name", "columns"), partial_indexes())
def test_partial_index_exists_with_its_condition(table, name, columns):
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
        (definition,) = cursor.fetchone()

    assert constraints[name]["columns"] == columns
    assert " WHERE " in definition  # partial: only the rows the queries look at
