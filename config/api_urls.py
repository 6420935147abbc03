from rest_framework.routers import DefaultRouter

from bots.api import ConversationViewSet, MessageViewSet
from knowledge.api import KeywordRuleViewSet

router = DefaultRouter()
router.register("conversations", ConversationViewSet, basename="conversation")
router.register("messages", MessageViewSet, basename="message")
router.register("keyword-rules", KeywordRuleViewSet, basename="keyword-rule")

urlpatterns = router.urls
