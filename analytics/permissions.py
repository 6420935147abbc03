"""Who sees the dashboard: operators, supervisors, superusers, and anyone granted ``analytics.view_dashboard``.
Agents (the console only) do not."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from core.permissions import OPERATOR, SUPERVISOR, user_in_group


def may_view_dashboard(user) -> bool:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return (
        user.is_superuser
        or user.has_perm("analytics.view_dashboard")
        or user_in_group(user, OPERATOR)
        or user_in_group(user, SUPERVISOR)
    )


class CanViewDashboard(BasePermission):
    message = "Only operators and supervisors can see the analytics dashboard."

    def has_permission(self, request, view) -> bool:
        return may_view_dashboard(request.user)
