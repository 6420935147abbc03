"""The dashboard's filters, from query parameters: ``from``, ``to`` (local days, inclusive), ``channel``, ``group``."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from analytics.selectors import MAX_DAYS, Filters

DEFAULT_DAYS = 30
EARLIEST = dt.date(2000, 1, 1)
LATEST = dt.date(2999, 12, 31)
MAX_ID = 2**63 - 1


class FilterForm(forms.Form):
    to = forms.DateField(required=False)
    channel = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    group = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["from"] = forms.DateField(required=False)  # a Python keyword: not a class attribute

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        last = cleaned.get("to") or timezone.localdate()
        first = cleaned.get("from")
        if not (EARLIEST <= last <= LATEST) or (first is not None and not EARLIEST <= first <= LATEST):
            raise forms.ValidationError(_("Dates must be between 2000 and 2999."))
        first = first or last - dt.timedelta(days=DEFAULT_DAYS - 1)
        if first > last:
            raise forms.ValidationError(_("The start date is after the end date."))
        if (last - first).days + 1 > MAX_DAYS:
            raise forms.ValidationError(_("Choose at most %(n)d days.") % {"n": MAX_DAYS})
        cleaned["first"], cleaned["last"] = first, last
        return cleaned

    def filters(self) -> Filters:
        c = self.cleaned_data
        return Filters(first=c["first"], last=c["last"], channel_id=c.get("channel"), group_id=c.get("group"))
