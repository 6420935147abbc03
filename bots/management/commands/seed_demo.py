from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from bots.demo import seed_channels
from core.demo import seed_sensitive, seed_users
from knowledge.demo import seed_knowledge
from routing.demo import seed_routing


class Command(BaseCommand):
    help = "Load the demo shop and demo users. Idempotent: a second run changes nothing."

    def handle(self, *args, **options):
        password = settings.KEFU_DEMO_PASSWORD
        if getattr(settings, "KEFU_ENV", "local") == "production" and password == settings.KEFU_DEMO_DEFAULT_PASSWORD:
            raise CommandError("Refusing the default demo password in production: set KEFU_DEMO_PASSWORD.")
        with transaction.atomic():
            users = seed_users(password=password)
            channels = seed_channels()
            knowledge = seed_knowledge()
            routing = seed_routing()  # agent groups, agents, routing rules, demo customers with orders, RFM
            words = seed_sensitive()  # demo sensitive-word lists (flag, mask, block, hand-off)
        self.stdout.write(
            f"seed_demo: created {users['users']} users, {users['groups']} groups, {channels} channel rows, "
            f"knowledge {knowledge}, routing {routing} rows, {words} sensitive-word rows "
            "(0 everywhere means it was already loaded)"
        )
