"""The one read-only shape of the admin for rows that only services write (SPEC §6a)."""


class ServiceOwnedMixin:
    """Rows only services create and change (status, counters, storage pointers, hashes):
    the admin shows them and never adds, edits or deletes one. A stray edit here would
    corrupt a record that uploads, finalize and cleanup rely on."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
