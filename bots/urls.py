from django.urls import path, re_path

from bots import simulator, webhooks

urlpatterns = [
    path("simulator/", simulator.simulator_page, name="simulator"),
    path("simulator/api/customers/", simulator.customer_create, name="simulator-customer-create"),
    path("simulator/api/customers/<int:customer_id>/messages/", simulator.customer_messages, name="simulator-messages"),
    path("simulator/api/customers/<int:customer_id>/send/", simulator.message_send, name="simulator-send"),
    # channel webhooks: stable URLs (WeChat, WeCom and bridges are configured with them); the trailing slash is
    # optional because a POST redirected by APPEND_SLASH would lose its body
    re_path(r"^wechat/oa/(?P<slug>[-\w]+)/?$", webhooks.oa_webhook, name="webhook-oa"),
    re_path(r"^wechat/kf/(?P<slug>[-\w]+)/?$", webhooks.kf_webhook, name="webhook-kf"),
    re_path(r"^bridge/(?P<slug>[-\w]+)/?$", webhooks.bridge_webhook, name="webhook-bridge"),
]
