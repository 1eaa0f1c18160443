"""``pk__any=ids``: a list of primary keys sent as one array parameter on PostgreSQL.

Cleanup names a thousand rows per statement. ``pk__in`` renders a thousand
placeholders that Django, psycopg and PostgreSQL each handle one by one;
``= ANY(%s::uuid[])`` sends one array literal and plans the same index lookups.
Other databases get plain ``IN``. Registered on the primary key of every portal
model (not on the field class, so the host project's models are left alone).
"""

from django.core.exceptions import EmptyResultSet
from django.db.models.lookups import In


class AnyOf(In):
    lookup_name = "any"

    def as_postgresql(self, compiler, connection):
        if not self.rhs_is_direct_value():
            return super().as_sql(compiler, connection)
        field = self.lhs.output_field
        values = [
            field.get_db_prep_value(value, connection, prepared=True)
            for value in self.rhs
            if value is not None
        ]
        if not values:
            raise EmptyResultSet
        lhs, lhs_params = self.process_lhs(compiler, connection)
        # One text literal: psycopg would otherwise adapt (and quote) every element.
        array = "{" + ",".join(_array_element(value) for value in values) + "}"
        return f"{lhs} = ANY(%s::{field.db_type(connection)}[])", (*lhs_params, array)


def _array_element(value) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def register_any_lookup(models) -> None:
    for model in models:
        model._meta.pk.register_lookup(AnyOf)
