"""Batch SQL shared by cleanup and the dispatcher: lock a batch of rows and stamp it.

One job, done the same way everywhere: take the next rows of a queryset in index
order with ``SELECT … FOR UPDATE SKIP LOCKED`` (rows another worker holds are
skipped, not waited for: that worker is handling them) and write to them in the
same short transaction.

- PostgreSQL: one statement, ``UPDATE … WHERE pk = ANY(ARRAY(SELECT … FOR UPDATE
  SKIP LOCKED)) RETURNING …``. One round trip, and primary-key lookups where a join
  or ``IN (SELECT …)`` lets the planner hash the whole table on every batch. The
  statement takes the locks itself, so a row changed after it was read is
  re-checked against the queryset and left alone if it no longer matches.
- Elsewhere (SQLite, which serialises writers instead of locking rows): read the
  batch, then a conditional UPDATE of the same queryset; only the rows still
  matching were stamped, and only those are returned.

Lists of primary keys go through ``pk__any`` (``portal.lookups``), never ``pk__in``.
Because claims skip what another worker holds, a step may run its batch loop on
several connections at once (``on_connections``).

``unique_row`` reads the one row of a lookup on a unique key, for the queries every
request makes.
"""

import contextvars
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from django.db import connection, transaction
from django.db.models.sql import UpdateQuery


def unique_row(queryset):
    """The row of ``queryset`` (filtered on a unique key), or None.

    ``first()`` without the ``ORDER BY pk`` it adds: resolving that ordering is about
    a sixth of the Python time of such a query, and one row needs no order.
    """
    return next(iter(queryset[:1]), None)


def lock_batch(queryset, *, size, fields=(), after=None, order_by="pk") -> list[tuple]:
    """The next ``size`` rows (pk first, then ``fields``) after pk ``after``, locked for the
    current transaction. Walking an index (the primary key unless ``order_by`` names
    another) keeps every batch query a range scan."""
    if after is not None:
        queryset = queryset.filter(pk__gt=after)
    if connection.features.has_select_for_update_skip_locked:
        queryset = queryset.select_for_update(skip_locked=True, of=("self",))
    return list(queryset.order_by(order_by).values_list("pk", *fields)[:size])


def claim_batch(
    queryset, *, size, values, order_by="pk", returning=(), related=None
) -> list[tuple]:
    """Lock the next ``size`` rows of ``queryset`` in ``order_by`` order, set ``values``
    on them (plain values or expressions such as ``F("attempts") + 1``) and return each
    one's pk and ``returning`` fields. Call inside a transaction.

    ``related`` is ``(foreign key name, values)``: those values are set as well on the
    rows the batch points to, in the same statement on PostgreSQL.
    """
    model = queryset.model
    foreign_key = model._meta.get_field(related[0]) if related else None
    if connection.vendor == "postgresql":
        return _claim_batch_postgresql(
            queryset, size, values, order_by, returning, foreign_key, related
        )
    rows = lock_batch(queryset, fields=returning, size=size, order_by=order_by)
    ids = [row[0] for row in rows]
    if queryset.filter(pk__any=ids).update(**values) < len(rows):
        # A row changed between being read and being updated: only the rows that now
        # carry the plain values were stamped by this call.
        plain = {k: v for k, v in values.items() if not hasattr(v, "resolve_expression")}
        ids = set(model.objects.filter(pk__any=ids, **plain).values_list("pk", flat=True))
        rows = [row for row in rows if row[0] in ids]
    if foreign_key:
        targets = model.objects.filter(pk__any=[row[0] for row in rows])
        target_ids = targets.values_list(foreign_key.attname, flat=True)
        foreign_key.related_model.objects.filter(pk__any=list(target_ids)).update(**related[1])
    return rows


def claim_batch_sql(
    queryset, *, size, values, order_by="pk", returning=(), skip_locked=True
) -> tuple[str, list]:
    """PostgreSQL: ``claim_batch``'s one statement, ``UPDATE … RETURNING`` the pk and the
    ``returning`` fields' columns, for a caller that builds on it in a ``WITH`` query.

    ``skip_locked=False`` waits for rows another transaction holds, then re-checks them
    against the queryset: for a conditional update that must not miss a row a
    concurrent claim holds for an instant (it locks rows it then finds taken)."""
    model = queryset.model
    locked = queryset.order_by(order_by).select_for_update(skip_locked=skip_locked, of=("self",))
    select_sql, select_params = locked.values("pk")[:size].query.sql_with_params()
    where = f"{_qn(model._meta.pk.column)} = ANY(ARRAY({select_sql}))"
    update_sql, params = _update_sql(model, values, where)
    return f"{update_sql} RETURNING {_returned(model, returning)}", [*params, *select_params]


def _returned(model, returning) -> str:
    return ", ".join(
        _qn(f.column) for f in [model._meta.pk, *map(model._meta.get_field, returning)]
    )


def _claim_batch_postgresql(queryset, size, values, order_by, returning, foreign_key, related):
    sql, params = claim_batch_sql(
        queryset, size=size, values=values, order_by=order_by, returning=returning
    )
    if foreign_key:
        target = _qn(foreign_key.column)
        related_sql, related_params = _update_sql(
            foreign_key.related_model,
            related[1],
            f"{_qn(foreign_key.target_field.column)} = ANY(ARRAY(SELECT {target} FROM batch))",
        )
        sql = (
            f"WITH batch AS ({sql}, {target}),"
            f" related AS ({related_sql}) SELECT {_returned(queryset.model, returning)} FROM batch"
        )
        params = [*params, *related_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _update_sql(model, values: dict, where: str) -> tuple[str, list]:
    """``UPDATE <model's table> SET <values> WHERE <where>``, the SET clause compiled by
    Django itself (so expressions and field conversions are Django's)."""
    query = UpdateQuery(model)
    query.add_update_values(values)
    sql, params = query.get_compiler(connection=connection).as_sql()
    return f"{sql} WHERE {where}", list(params)


def _qn(name: str) -> str:
    return connection.ops.quote_name(name)


# portal.models.new_id in PostgreSQL, for rows an INSERT … SELECT writes (no id travels
# from Python): the same layout, 48 bits of Unix milliseconds, version 7, variant 10,
# the rest random. Ids of the same millisecond are in no particular order among them.
NEW_ID_SQL = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing substring("
    "int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)"
    " FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid"
)


def iso_sql(timestamp: str) -> str:
    """PostgreSQL: the SQL timestamp ``timestamp`` as text, exactly as Python's
    ``isoformat()`` writes a UTC datetime (microseconds only when there are some);
    NULL stays NULL. For payloads built in the database that must equal Python's."""
    # One to_char a value: it is most of the cost of a payload built in SQL.
    text = f"to_char(({timestamp}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"
    return f"(replace({text}, '.000000', '') || '+00:00')"


@contextmanager
def committed_asynchronously():
    """A transaction whose commit does not wait for its WAL to reach disk (PostgreSQL).

    Only for writes the next run redoes if a server crash loses the last fraction of a
    second of them (cleanup's part claims and part row deletions, PEP 0019): waiting
    on the flush of every batch was a tenth of the part step.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


def on_connections(work, count: int) -> list:
    """``work()`` run ``count`` times at once, each in its own thread on its own database
    connection (closed after), in a copy of the caller's context (log fields such as
    ``run_id`` stay); returns the results. Once one fails, the others still finish,
    then its exception is raised.

    Only on PostgreSQL, and only outside a transaction: inside one (a test's, an atomic
    request's) other connections would not see its uncommitted rows, and SQLite takes
    one writer at a time. There ``work()`` runs once, here.
    """
    if count <= 1 or connection.vendor != "postgresql" or connection.in_atomic_block:
        return [work()]

    def on_own_connection():
        try:
            return work()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [
            pool.submit(contextvars.copy_context().run, on_own_connection) for _ in range(count)
        ]
    return [future.result() for future in futures]
