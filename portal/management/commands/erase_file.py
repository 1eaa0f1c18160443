from django.core.management.base import BaseCommand, CommandError

from portal.exceptions import RetentionRefused, StorageError
from portal.services.retention import erase_file


class Command(BaseCommand):
    help = "Delete a stored file now on an erasure request (refused while it is on legal hold)."

    def add_arguments(self, parser):
        parser.add_argument("file_id", metavar="FILE_ID")
        parser.add_argument("--reason", required=True, help="The request being honoured.")

    def handle(self, *args, file_id, reason, **options):
        try:
            proof = erase_file(file_id=file_id, reason=reason)
        except RetentionRefused as exc:
            raise CommandError(f"FILE_ID {file_id}: {exc.message}") from exc
        except StorageError as exc:
            raise CommandError(f"storage refused, the file is kept: {exc}") from exc
        self.stdout.write(
            f"Erased {proof.original_filename} ({proof.file_id}), {proof.size_bytes} bytes, "
            f"at {proof.deleted_at.isoformat()}."
        )
