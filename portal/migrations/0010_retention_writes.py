"""Cheaper retention writes on PostgreSQL (PEP 0025, "Write path and workers").

- The outbox's idempotency key is unique through a constraint: ``unique=True`` also
  made a LIKE-only index, as large as the unique one, that every event insert paid
  for and no query reads.
- The file table leaves part of every page free, so the deletion claim (it sets
  only ``retention_claimed_until``, which no index holds) is a HOT update: no new
  entries in the table's eleven indexes. Rows written from now on get the room;
  existing rows keep their pages until they move.
"""

from django.db import migrations, models

FILE_FILLFACTOR = 60


def set_file_fillfactor(apps, schema_editor):
    _alter_file_table(apps, schema_editor, f"SET (fillfactor = {FILE_FILLFACTOR})")


def reset_file_fillfactor(apps, schema_editor):
    _alter_file_table(apps, schema_editor, "RESET (fillfactor)")


def _alter_file_table(apps, schema_editor, change):
    if schema_editor.connection.vendor != "postgresql":
        return  # a PostgreSQL storage parameter; other databases have no equivalent
    table = apps.get_model("portal", "UploadFile")._meta.db_table
    schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} {change}")


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0009_compliance"),
    ]

    operations = [
        migrations.AlterField(
            model_name="outboxevent",
            name="idempotency_key",
            field=models.CharField(max_length=255),
        ),
        migrations.AddConstraint(
            model_name="outboxevent",
            constraint=models.UniqueConstraint(
                fields=("idempotency_key",), name="portal_event_key_uniq"
            ),
        ),
        migrations.RunPython(set_file_fillfactor, reset_file_fillfactor, elidable=False),
    ]
