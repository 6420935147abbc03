"""Roles (Django groups) with least privilege, and the demo users.

| group | staff (admin) | permissions |
|---|---|---|
| operator | yes | everything in the knowledge app (rules, FAQ, intents, models, products) and the sensitive-word lists; review sensitive-word hits; view conversations, messages, outbox, channels (sending-limit usage) |
| agent | no | none: the agent console (/console/, login at /accounts/login/) checks ticket visibility itself |
| supervisor | yes | view everything in bots and routing, change tickets (reassign); view knowledge and sensitive words; export and erase a customer's data (PIPL) |
| auditor | yes | view the audit log, nothing else |
| admin | superuser | everything |

``seed_users`` is idempotent and also repairs what older versions created: missing permissions are added to the
groups, demo users get their missing groups and the staff flag of their role. Passwords are never touched."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from core.permissions import AGENT, AUDITOR, OPERATOR, SUPERVISOR

# group -> grants: (app_label, action or None for every permission of the app, model names or None for all)
GROUPS: dict[str, list[tuple[str, str | None, tuple[str, ...] | None]]] = {
    OPERATOR: [
        ("knowledge", None, None),
        # what the bot said and whether it went out: held/blocked replies with their reasons, sending-limit usage
        ("bots", "view", ("conversation", "message", "outbox", "channel")),
        # sensitive-word lists are content rules like keyword rules; hits are reviewed by operators
        ("core", None, ("sensitivewordlist", "sensitiveword")),
        ("core", "view", ("sensitivehit",)),
        ("core", "change", ("sensitivehit",)),
    ],
    SUPERVISOR: [
        ("bots", "view", None),
        ("routing", "view", None),
        ("routing", "change", ("ticket",)),
        ("knowledge", "view", None),
        ("core", "view", ("sensitivewordlist", "sensitiveword", "sensitivehit")),
        # PIPL: export and erase a customer's data (bots.privacy_api, the Customer admin actions)
        ("bots", "export", ("customer",)),
        ("bots", "erase", ("customer",)),
    ],
    AGENT: [],
    AUDITOR: [("core", "view", ("auditlog",))],
}
USERS = [
    # username, groups, is_staff, is_superuser
    ("admin", [], True, True),
    ("operator", [OPERATOR], True, False),
    ("supervisor", [SUPERVISOR], True, False),
    ("agent1", [AGENT], False, False),
    ("agent2", [AGENT], False, False),
    ("auditor", [AUDITOR], True, False),
]


def _permissions(app_label: str, action: str | None, models: tuple[str, ...] | None) -> list[Permission]:
    qs = Permission.objects.filter(content_type__app_label=app_label)
    if action:
        qs = qs.filter(codename__startswith=f"{action}_")
    if models is not None:
        qs = qs.filter(content_type__model__in=models)
    return list(qs)


def seed_groups() -> int:
    """Create the role groups and add the permissions they miss; returns the number of groups created."""
    created = 0
    for name, grants in GROUPS.items():
        group, was_created = Group.objects.get_or_create(name=name)
        created += was_created
        wanted = {p.pk for grant in grants for p in _permissions(*grant)}
        missing = wanted - set(group.permissions.values_list("pk", flat=True))
        if missing:
            group.permissions.add(*missing)
    return created


def seed_users(*, password: str) -> dict[str, int]:
    created = {"groups": seed_groups(), "users": 0}
    User = get_user_model()
    for username, groups, is_staff, is_superuser in USERS:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(
                username=username, is_staff=is_staff, is_superuser=is_superuser, email=f"{username}@example.com"
            )
            user.set_password(password)
            user.save()
            created["users"] += 1
        elif (user.is_staff, user.is_superuser) != (is_staff, is_superuser):
            User.objects.filter(pk=user.pk).update(is_staff=is_staff, is_superuser=is_superuser)
        missing = Group.objects.filter(name__in=groups).exclude(user=user)
        if missing.exists():
            user.groups.add(*missing)
    return created


# --- demo sensitive-word lists ---------------------------------------------------------------------------------------

SENSITIVE_LISTS: dict[str, dict] = {
    # name: list settings and words (word, category, action)
    "引流与联系方式": {
        "direction": "both",
        "allow_phrases": "",
        "words": [
            ("加微信", "引流", "flag"),
            ("加我微信", "引流", "flag"),
            ("加v", "引流", "flag"),
            ("vx", "引流", "mask"),
            ("QQ号", "引流", "mask"),
            ("私下交易", "引流", "flag"),
        ],
    },
    "违禁与投诉升级": {
        "direction": "both",
        "allow_phrases": "",
        "words": [
            ("代开发票", "违禁", "block"),
            ("赌博", "违禁", "block"),
            ("刷单", "违禁", "block"),
            ("12315", "投诉升级", "handoff"),
            ("消协", "投诉升级", "handoff"),
        ],
    },
}


def seed_sensitive() -> int:
    """The demo word lists (contact diversion flagged or masked; forbidden words blocked; complaint escalation
    handed off). Idempotent: missing lists and words are added, nothing existing is changed. Returns rows created."""
    from core import sensitive
    from core.models import SensitiveWord, SensitiveWordList

    created = 0
    for name, spec in SENSITIVE_LISTS.items():
        word_list, new_list = SensitiveWordList.objects.get_or_create(
            name=name, defaults={"direction": spec["direction"], "allow_phrases": spec["allow_phrases"]}
        )
        have = set(SensitiveWord.objects.filter(word_list=word_list).values_list("text", flat=True))
        words = [
            SensitiveWord(word_list=word_list, text=text, category=category, action=action)
            for text, category, action in spec["words"]
            if text not in have
        ]
        SensitiveWord.objects.bulk_create(words)
        created += new_list + len(words)
        if new_list or words:
            sensitive.word_list_changed(word_list_id=word_list.pk)
    return created
