"""``{% kefu_limit_alerts %}``: the banner of sending accounts at 80 % of their hourly limit (admin index)."""

from django import template

from bots import selectors
from bots.limits_display import limit_alert_text

register = template.Library()


@register.inclusion_tag("bots/limit_alerts.html", takes_context=True)
def kefu_limit_alerts(context):
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_active or not user.is_staff:
        return {"alerts": []}
    return {"alerts": [limit_alert_text(entry) for entry in selectors.channel_limit_alerts()]}
