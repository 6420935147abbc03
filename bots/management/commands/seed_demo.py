from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from bots.demo import seed_channels
from core.demo import seed_users
from knowledge.demo import seed_rules


class Command(BaseCommand):
    help = "Load the demo shop and demo users. Idempotent: a second run changes nothing."

    def handle(self, *args, **options):
        password = settings.KEFU_DEMO_PASSWORD
        if getattr(settings, "KEFU_ENV", "local") == "production" and password == settings.KEFU_DEMO_DEFAULT_PASSWORD:
            raise CommandError("Refusing the default demo password in production: set KEFU_DEMO_PASSWORD.")
        with transaction.atomic():
            users = seed_users(password=password)
            channels = seed_channels()
            rules = seed_rules()
        self.stdout.write(
            f"seed_demo: created {users['users']} users, {users['groups']} groups, {channels} channel rows, "
            f"{rules} keyword rules (0 everywhere means it was already loaded)"
        )
