"""django-configurations values whose environment variable is exactly the setting name.

A value that cannot be parsed stops start-up with ImproperlyConfigured naming the
variable, instead of a bare ValueError deep in a traceback.
"""

from configurations import values
from django.core.exceptions import ImproperlyConfigured


class _EnvNamed:
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("environ_prefix", None)
        super().__init__(*args, **kwargs)

    def setup(self, name):
        try:
            return super().setup(name)
        except ValueError as exc:
            variable = self.full_environ_name(name)
            raise ImproperlyConfigured(
                f"environment variable {variable} is invalid: {exc}"
            ) from None


class Value(_EnvNamed, values.Value):
    pass


class BooleanValue(_EnvNamed, values.BooleanValue):
    pass


class IntegerValue(_EnvNamed, values.IntegerValue):
    pass


class FloatValue(_EnvNamed, values.FloatValue):
    pass


class ListValue(_EnvNamed, values.ListValue):
    pass


class SecretValue(_EnvNamed, values.SecretValue):
    pass


# Options every database URL gets unless it sets its own (SPEC §2). SQLite: IMMEDIATE
# transactions take the write lock when they begin, so concurrent writers (gunicorn
# threads, worker, beat) queue for up to ``timeout`` seconds instead of failing with
# "database is locked" when a reader upgrades to a writer mid-transaction. PostgreSQL:
# a database that accepts TCP and never answers fails the connect after this many
# seconds instead of hanging every request that touches it.
DATABASE_OPTIONS = {
    "django.db.backends.sqlite3": {"transaction_mode": "IMMEDIATE", "timeout": 20},
    "django.db.backends.postgresql": {"connect_timeout": 5},
}


class DatabaseURLValue(_EnvNamed, values.DatabaseURLValue):
    """A database URL with ``DATABASE_OPTIONS`` for its engine, where the URL sets none.

    ``pool``: options of a psycopg connection pool (Django's ``"pool"`` option) for a
    PostgreSQL URL; other engines have none.
    """

    def __init__(self, *args, pool: dict | None = None, **kwargs):
        self.pool = pool
        super().__init__(*args, **kwargs)

    def setup(self, name):
        databases = super().setup(name)
        for database in databases.values():
            options = DATABASE_OPTIONS.get(database["ENGINE"], {})
            if self.pool and database["ENGINE"] == "django.db.backends.postgresql":
                options = {**options, "pool": self.pool}
            database["OPTIONS"] = {**options, **database.get("OPTIONS", {})}
        return databases


def values_for(defaults: dict) -> type:
    """A settings mixin reading one variable per name of ``defaults``, typed like its default.

    The app's defaults stay in the app (``portal.conf.DEFAULTS``); the project only says
    that each of those names may come from the environment.
    """

    def value(default):
        if isinstance(default, bool):
            return BooleanValue(default)
        if isinstance(default, int):
            return IntegerValue(default)
        if isinstance(default, float):
            return FloatValue(default)
        return Value(default)

    return type("EnvironmentValues", (), {name: value(d) for name, d in defaults.items()})
