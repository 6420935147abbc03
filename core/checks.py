"""System checks of Kefu's own settings (``manage.py check``; ``--deploy`` runs them too).

``kefu.E001``: in production (``KEFU_ENV == "production"``) the per-account sending limits may not be switched off
(``KEFU_RATE_LIMITS_ENABLED`` false or ``KEFU_DEFAULT_RATE_PER_HOUR`` 0) without ``KEFU_ALLOW_UNLIMITED_SENDING``.
``config/settings/production.py`` refuses to load in that case already; the check also catches a settings module
that imports production and switches the limits off afterwards. (Reads settings only: core imports no other app.)
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register


@register()
def sending_limits_check(app_configs=None, **kwargs) -> list[Error]:
    if getattr(settings, "KEFU_ENV", "local") != "production":
        return []
    if getattr(settings, "KEFU_ALLOW_UNLIMITED_SENDING", False):
        return []
    enabled = getattr(settings, "KEFU_RATE_LIMITS_ENABLED", True)
    default_rate = int(getattr(settings, "KEFU_DEFAULT_RATE_PER_HOUR", 0) or 0)
    if enabled and default_rate > 0:
        return []
    return [
        Error(
            "Sending limits are switched off in production.",
            hint="Set KEFU_RATE_LIMITS_ENABLED=true and KEFU_DEFAULT_RATE_PER_HOUR>0, or the explicit override "
            "KEFU_ALLOW_UNLIMITED_SENDING=true (WeChat bans accounts that send too much).",
            id="kefu.E001",
        )
    ]
