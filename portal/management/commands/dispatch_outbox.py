import json

from django.core.management.base import BaseCommand

from portal.services.dispatcher import dispatch_due_deliveries


class Command(BaseCommand):
    help = "Deliver every due outbox delivery (one pass) and print the counts."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, help="Deliveries per claim.")
        parser.add_argument("--json", action="store_true", help="Print the counts as JSON.")

    def handle(self, *args, batch_size, **options):
        result = dispatch_due_deliveries(batch_size=batch_size)
        self.stdout.write(json.dumps(result.as_dict()) if options["json"] else result.summary())
