from rest_framework.routers import DefaultRouter

from bots.api import ConversationViewSet, MessageViewSet
from knowledge.api import KeywordRuleViewSet
from routing.api import OrderViewSet

router = DefaultRouter()
router.register("conversations", ConversationViewSet, basename="conversation")
router.register("messages", MessageViewSet, basename="message")
router.register("keyword-rules", KeywordRuleViewSet, basename="keyword-rule")
router.register("orders", OrderViewSet, basename="order")

urlpatterns = router.urls
