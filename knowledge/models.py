import re

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from core.models import TimeStampedModel


class KeywordRule(TimeStampedModel):
    class MatchType(models.TextChoices):
        CONTAINS = "contains", _("Contains")
        EXACT = "exact", _("Exact")
        REGEX = "regex", _("Regular expression")

    name = models.CharField(_("name"), max_length=100, blank=True)
    keyword = models.CharField(
        _("keyword"), max_length=200, help_text=_("For 'contains', several words may be separated by |.")
    )
    match_type = models.CharField(_("match type"), max_length=16, choices=MatchType.choices, default=MatchType.CONTAINS)
    reply = models.TextField(_("reply"), help_text=_("Variables: {nickname}."))
    priority = models.IntegerField(_("priority"), default=100, help_text=_("Higher wins."))
    enabled = models.BooleanField(_("enabled"), default=True)

    class Meta:
        verbose_name = _("keyword rule")
        verbose_name_plural = _("keyword rules")
        ordering = ["-priority", "id"]

    def __str__(self) -> str:
        return self.name or self.keyword

    def clean(self) -> None:
        if not self.keyword.strip():
            raise ValidationError({"keyword": _("The keyword cannot be empty.")})
        if self.match_type == self.MatchType.REGEX:
            try:
                re.compile(self.keyword)
            except re.error as exc:
                raise ValidationError({"keyword": _("Invalid regular expression: %(error)s") % {"error": exc}}) from exc
