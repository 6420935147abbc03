"""Demo users and their groups (least privilege grows with the compliance issue)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

GROUPS = {
    "operator": [("knowledge", None)],
    "supervisor": [("bots", "view"), ("knowledge", "view")],
    "agent": [("bots", "view")],
}
USERS = [
    # username, groups, is_staff, is_superuser
    ("admin", [], True, True),
    ("operator", ["operator"], True, False),
    ("supervisor", ["supervisor"], True, False),
    ("agent1", ["agent"], True, False),
    ("agent2", ["agent"], True, False),
]


def _permissions(app_label: str, action: str | None) -> list[Permission]:
    qs = Permission.objects.filter(content_type__app_label=app_label)
    return list(qs.filter(codename__startswith=f"{action}_") if action else qs)


def seed_users(*, password: str) -> dict[str, int]:
    created = {"groups": 0, "users": 0}
    for name, grants in GROUPS.items():
        group, was_created = Group.objects.get_or_create(name=name)
        created["groups"] += was_created
        wanted = {p.pk for app, action in grants for p in _permissions(app, action)}
        missing = wanted - set(group.permissions.values_list("pk", flat=True))
        if missing:
            group.permissions.add(*missing)
    User = get_user_model()
    for username, groups, is_staff, is_superuser in USERS:
        if User.objects.filter(username=username).exists():
            continue
        user = User(username=username, is_staff=is_staff, is_superuser=is_superuser, email=f"{username}@example.com")
        user.set_password(password)
        user.save()
        user.groups.set(Group.objects.filter(name__in=groups))
        created["users"] += 1
    return created
