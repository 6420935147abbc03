"""The agent console: ``/console/`` and its JSON endpoints (``routing.views``); the socket is ``ws/console/``."""

from django.urls import path

from routing import views

urlpatterns = [
    path("", views.console_page, name="console"),
    path("api/state/", views.console_state, name="console-state"),
    path("api/canned/", views.canned_replies, name="console-canned"),
    path("api/presence/", views.presence_set, name="console-presence"),
    path("api/conversations/<int:conversation_id>/", views.conversation_detail, name="console-conversation"),
    path(
        "api/conversations/<int:conversation_id>/timeline/",
        views.conversation_timeline,
        name="console-conversation-timeline",
    ),
    path("api/tickets/<int:ticket_id>/", views.ticket_detail, name="console-ticket"),
    path("api/tickets/<int:ticket_id>/claim/", views.ticket_claim, name="console-claim"),
    path("api/tickets/<int:ticket_id>/reply/", views.ticket_reply, name="console-reply"),
    path("api/tickets/<int:ticket_id>/note/", views.ticket_note, name="console-note"),
    path("api/tickets/<int:ticket_id>/transfer/", views.ticket_transfer, name="console-transfer"),
    path("api/tickets/<int:ticket_id>/return/", views.ticket_return, name="console-return"),
    path("api/tickets/<int:ticket_id>/resolve/", views.ticket_resolve, name="console-resolve"),
]
