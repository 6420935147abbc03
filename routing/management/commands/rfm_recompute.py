from django.core.management.base import BaseCommand

from routing.services import rfm_recompute


class Command(BaseCommand):
    help = (
        "Recompute every customer's RFM scores from their orders: database rows (RfmScore) and the Redis "
        "sorted set kefu:rfm. Prints its progress."
    )

    def handle(self, *args, **options):
        run = rfm_recompute(progress=lambda line: self.stdout.write(line))
        self.stdout.write(
            self.style.SUCCESS(
                f"rfm_recompute: {run.people} people ({run.with_orders} with orders) in {run.seconds:.2f} s"
                + ("" if run.redis_written else " (sorted set not written)")
            )
        )
