from django.urls import path
from rest_framework.routers import DefaultRouter

from bots.api import ChannelLimitsView, ConversationViewSet, MessageViewSet
from bots.privacy_api import CustomerEraseView, CustomerExportView
from knowledge.api import KeywordRuleViewSet
from routing.api import OrderViewSet

router = DefaultRouter()
router.register("conversations", ConversationViewSet, basename="conversation")
router.register("messages", MessageViewSet, basename="message")
router.register("keyword-rules", KeywordRuleViewSet, basename="keyword-rule")
router.register("orders", OrderViewSet, basename="order")

urlpatterns = router.urls + [
    # sending accounts' use of their hourly limits (README "Rate limits and platform windows")
    path("channels/limits/", ChannelLimitsView.as_view(), name="channel-limits"),
    # PIPL (README "Privacy (PIPL)")
    path("customers/<int:customer_id>/export/", CustomerExportView.as_view(), name="customer-export"),
    path("customers/<int:customer_id>/erase/", CustomerEraseView.as_view(), name="customer-erase"),
]
