"""Leave half of every upload-part page free on PostgreSQL.

A part row is updated once in its life, when a cleanup run claims it. With room
left on its page that update is HOT: no new entries in the table's three indexes
and less WAL, which made part deletion at 1M sessions about a fifth faster. The
setting applies to rows written from now on; existing rows keep their pages.
"""

from django.db import migrations

PART_FILLFACTOR = 50


def set_part_fillfactor(apps, schema_editor):
    _alter_part_table(apps, schema_editor, f"SET (fillfactor = {PART_FILLFACTOR})")


def reset_part_fillfactor(apps, schema_editor):
    _alter_part_table(apps, schema_editor, "RESET (fillfactor)")


def _alter_part_table(apps, schema_editor, change):
    if schema_editor.connection.vendor != "postgresql":
        return  # a PostgreSQL storage parameter; other databases have no equivalent
    table = apps.get_model("portal", "UploadPart")._meta.db_table
    schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} {change}")


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0002_part_indexes"),
    ]

    operations = [
        migrations.RunPython(set_part_fillfactor, reset_part_fillfactor, elidable=False),
    ]
