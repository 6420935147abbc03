from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AnalyticsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "analytics"
    verbose_name = _("Analytics")

    def ready(self) -> None:
        from analytics import facts
        from knowledge.services.mining import mining_sources_register

        # knowledge never imports bots: analytics hands it the conversations to mine
        mining_sources_register(topics=facts.conversation_topics, questions=facts.unanswered_questions)
