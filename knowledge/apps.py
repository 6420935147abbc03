from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class KnowledgeConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "knowledge"
    verbose_name = _("Knowledge base")

    def ready(self) -> None:
        from core import health
        from knowledge import context, selectors
        from knowledge.services.catalog import demo_order_lookup

        # Orders: the demo table until the routing app registers the real one (it runs later: last wins).
        context.order_lookup_register(demo_order_lookup)
        # core may not import knowledge, so knowledge adds its check to core's registry.
        health.CHECKS.setdefault("embedding", selectors.embedding_health_check)
