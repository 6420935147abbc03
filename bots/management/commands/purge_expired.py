"""Retention: replace the content of messages older than the retention period (README "Privacy (PIPL)")."""

from django.core.management.base import BaseCommand, CommandError

from bots.services import privacy
from core.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Replace the content of messages older than KEFU_RETENTION_DAYS (or --days N) with a placeholder, in "
        "committed batches (resumable). Counts and rollups stay."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="retention in days (default KEFU_RETENTION_DAYS)")
        parser.add_argument("--dry-run", action="store_true", help="count what would be purged, change nothing")
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, days, dry_run, batch_size, **options):
        try:
            result = privacy.messages_purge_expired(days=days, batch=max(1, batch_size), dry_run=dry_run)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        cutoff = result["cutoff"].isoformat(timespec="seconds")
        if dry_run:
            self.stdout.write(f"purge_expired: would purge {result['would_purge']} message(s) older than {cutoff}")
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"purge_expired: purged {result['purged']} message(s) older than {cutoff} "
                    f"in {result['batches']} batch(es)"
                )
            )
