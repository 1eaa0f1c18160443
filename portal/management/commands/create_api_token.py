from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from portal.services.tokens import create_api_token


class Command(BaseCommand):
    help = "Issue an upload API token for USERNAME and print it once (only its hash is kept)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label to tell tokens apart in admin.")

    def handle(self, *args, username, name, **options):
        user_model = get_user_model()
        try:
            user = user_model.objects.get(**{user_model.USERNAME_FIELD: username})
        except user_model.DoesNotExist:
            raise CommandError(f"USERNAME: no user named {username!r}.") from None
        issued = create_api_token(user=user, name=name)
        self.stdout.write(issued.plaintext)
        self.stderr.write(
            f"Token {issued.api_token.prefix}… for {username}: store it now, it is not shown again."
        )
