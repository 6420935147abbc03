"""Roles (Django groups) and permission helpers. What each role may do is in ``core.demo.GROUPS``; README
"Security and compliance" has the table."""

from __future__ import annotations

from rest_framework.permissions import DjangoModelPermissions

OPERATOR = "operator"  # knowledge: rules, FAQ, intents, models; reads conversations and messages
AGENT = "agent"  # the agent console only (not staff: no admin)
SUPERVISOR = "supervisor"  # every conversation and ticket, reassign, reports
AUDITOR = "auditor"  # the audit log, read-only
ROLES = (OPERATOR, AGENT, SUPERVISOR, AUDITOR)


def user_in_group(user, name: str) -> bool:
    """True for a superuser or a member of group ``name`` (active users only)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.is_superuser or user.groups.filter(name=name).exists()


def can_use_simulator(user) -> bool:
    """The chat simulator talks to the bot as a web customer and shows its conversations: staff who may read
    conversations' messages (operators, supervisors, superusers), not e.g. the auditor."""
    return bool(
        user
        and getattr(user, "is_authenticated", False)
        and user.is_active
        and user.is_staff
        and user.has_perm("bots.view_message")
    )


def can_view_audit_log(user) -> bool:
    return bool(user and user.is_active and user.has_perm("core.view_auditlog"))


class ModelPermissionsWithView(DjangoModelPermissions):
    """DRF: reads need ``<app>.view_<model>``, writes the add/change/delete permission (DRF's own class lets any
    authenticated user read)."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }
