"""The retention steps' batches on PostgreSQL: each one statement, its writes built in SQL.

A notice batch claims its files and inserts their ``file.expiring`` events; a deletion
record flips its files to ``deleted`` and inserts their ``FileDeletion`` proofs and
``file.deleted`` events. Each is one ``WITH`` query: the claim (``claim_batch_sql``)
returns the rows, and the inserts read them there, payloads by ``FileInfo.sql``. No
row travels to Python to be turned into a payload and sent back: that per-row work
(parsing timestamps, building dicts, JSON, Django's bulk insert) was most of both steps
(PEP 0025). ``portal.services.retention`` keeps the same writes in Python for other
databases, and calls these on PostgreSQL.
"""

from django.db import connection

from portal.db import NEW_ID_SQL, claim_batch_sql, iso_sql
from portal.models import FileDeletion, RetentionPolicy, UploadFile
from portal.services.outbox import insert_events_sql
from portal.services.sessions import FileInfo

AGGREGATE_TYPE = "upload_file"

# What a claim reads of each file: enough for the event payloads and the proof.
FILE_FIELDS = (
    "original_filename",
    "content_type",
    "size_bytes",
    "sha256",
    "storage_backend",
    "storage_bucket",
    "storage_key",
    "retention_policy",
    "stored_at",
    "expires_at",
    "expiring_notified_at",
)

# The proof's columns that are the file's own, under the same names.
PROOF_FILE_COLUMNS = (
    "original_filename",
    "storage_backend",
    "storage_bucket",
    "storage_key",
    "size_bytes",
    "sha256",
    "stored_at",
    "expires_at",
)


def _with_policy(relation: str) -> str:
    """The claimed rows of ``relation`` with their policy's code and periods."""
    policies = connection.ops.quote_name(RetentionPolicy._meta.db_table)
    return (
        f"SELECT c.*, p.code AS policy_code, p.notice AS policy_notice,"
        f" p.retention AS policy_retention FROM {relation} c"
        f" LEFT JOIN {policies} p ON p.id = c.retention_policy_id"
    )


def notify_batch(due, *, size, values, now) -> list[str]:
    """Claim the next ``size`` files of ``due`` (setting ``values``) and write one
    ``file.expiring`` each, in one statement; returns the claimed ids (text)."""
    claim_sql, claim_params = claim_batch_sql(
        due, order_by="expires_at", size=size, values=values, returning=FILE_FIELDS
    )
    delete_after = "GREATEST(r.expires_at, r.notice_from + COALESCE(r.policy_notice, '0s'))"
    events_sql, events_params = insert_events_sql(
        event_type="file.expiring",
        aggregate_type=AGGREGATE_TYPE,
        rows="files",
        aggregate_id="r.id::text",
        key="'file.expiring:' || r.id::text || ':' || r.notice_at",
        body=(
            f"jsonb_build_object('file', {FileInfo.sql('r', 'r.policy_code')},"
            f" 'expires_at', {iso_sql('r.expires_at')},"
            f" 'delete_after', {iso_sql(delete_after)})"
        ),
        now=now,
    )
    sql = (
        f"WITH claimed AS ({claim_sql}),"
        " files AS (SELECT f.*, %s::timestamptz AS notice_from, %s AS notice_at"
        f" FROM ({_with_policy('claimed')}) f),"
        f" events AS ({events_sql})"
        " SELECT ARRAY(SELECT id::text FROM claimed), ARRAY(SELECT id FROM events)"
    )
    return _run(sql, [*claim_params, now, now.isoformat(), *events_params])


def record_batch(ids, *, values, now, reason, run_id, username, note) -> tuple[list, list]:
    """Flip the stored files among ``ids`` to ``deleted`` (setting ``values``) and write
    one ``FileDeletion`` and one ``file.deleted`` each, in one statement; returns the
    ids flipped (a file another call flipped first is not among them) and the events'."""
    claim_sql, claim_params = claim_batch_sql(
        UploadFile.objects.stored().filter(pk__any=list(ids)),
        size=len(ids),
        values=values,
        returning=FILE_FIELDS,
        # Another run's claim may lock these rows for an instant (it finds them taken):
        # skipping them would leave gone objects unrecorded. Locks go in pk order.
        skip_locked=False,
    )
    meta, qn = FileDeletion._meta, connection.ops.quote_name
    given = {
        "id": "r.new_id",
        "file_id": "r.id",
        **{name: f"r.{name}" for name in PROOF_FILE_COLUMNS},
        "retention_class": "COALESCE(r.policy_code, '')",
        "retention_period": "r.policy_retention",
        "notified_at": "r.expiring_notified_at",
    }
    constants = {
        "deleted_at": now,
        "reason": reason,
        "note": note,
        "cleanup_run_id": run_id,
        "deleted_by_username": username,
        "created_at": now,
        "updated_at": now,
    }
    columns = ", ".join(qn(meta.get_field(name).column) for name in [*given, *constants])
    proofs_sql = (
        f"INSERT INTO {qn(meta.db_table)} ({columns})"
        f" SELECT {', '.join(given.values())}, {', '.join(['%s'] * len(constants))}"
        f" FROM (SELECT f.*, {NEW_ID_SQL} AS new_id FROM files f) r"
    )
    events_sql, events_params = insert_events_sql(
        event_type="file.deleted",
        aggregate_type=AGGREGATE_TYPE,
        rows="files",
        aggregate_id="r.id::text",
        key="'file.deleted:' || r.id::text",
        body=(
            f"jsonb_build_object('file', {FileInfo.sql('r', 'r.policy_code')},"
            f" 'reason', r.reason, 'deleted_at', r.deleted_at_text)"
        ),
        now=now,
    )
    sql = (
        f"WITH flipped AS ({claim_sql}),"
        f" files AS (SELECT f.*, %s AS reason, %s AS deleted_at_text"
        f" FROM ({_with_policy('flipped')}) f),"
        f" proofs AS ({proofs_sql}), events AS ({events_sql})"
        " SELECT ARRAY(SELECT id FROM flipped), ARRAY(SELECT id FROM events)"
    )
    params = [*claim_params, reason, now.isoformat()]
    return _run(sql, [*params, *constants.values(), *events_params])


def _run(sql: str, params: list) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()
