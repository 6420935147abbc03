"""What operators teach the bot: keyword rules, the FAQ knowledge base, intents and their trained model
versions, the product catalogue and synonyms. Dialogue context lives in Redis (knowledge.context)."""

import re
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from core.fields import EncryptedCharField, EncryptedTextField
from core.models import EncryptedJSONField, TimeStampedModel
from knowledge import rules

_SPLIT = re.compile(r"[,，、;；\n]+")


def split_list(value: str) -> list[str]:
    """'a, b，c\\nd' -> ['a', 'b', 'c', 'd'] (commas in both widths, 、, semicolons, new lines)."""
    return [part.strip() for part in _SPLIT.split(value or "") if part.strip()]


class KeywordRule(TimeStampedModel):
    class MatchType(models.TextChoices):
        CONTAINS = "contains", _("Contains any word")
        ALL = "all", _("Contains all words")
        EXACT = "exact", _("Exact")
        REGEX = "regex", _("Regular expression")

    name = models.CharField(_("name"), max_length=100, blank=True)
    keyword = models.CharField(
        _("keyword"),
        max_length=500,
        help_text=_("Several words may be separated by |. For a regular expression, the pattern."),
    )
    match_type = models.CharField(_("match type"), max_length=16, choices=MatchType.choices, default=MatchType.CONTAINS)
    reply = models.TextField(_("reply"), help_text=_("Variables: {nickname}, {product}."))
    priority = models.IntegerField(_("priority"), default=100, help_text=_("Higher wins."))
    enabled = models.BooleanField(_("enabled"), default=True)
    channels = models.CharField(
        _("channels"),
        max_length=500,
        blank=True,
        help_text=_("Channel slugs separated by commas; empty means every channel."),
    )
    active_from = models.DateTimeField(_("active from"), null=True, blank=True)
    active_until = models.DateTimeField(_("active until"), null=True, blank=True)
    daily_start = models.TimeField(
        _("daily start"), null=True, blank=True, help_text=_("Local time; with daily end, e.g. 21:00-09:00 at night.")
    )
    daily_end = models.TimeField(_("daily end"), null=True, blank=True)

    class Meta:
        verbose_name = _("keyword rule")
        verbose_name_plural = _("keyword rules")
        ordering = ["-priority", "id"]

    def __str__(self) -> str:
        return self.name or self.keyword

    @property
    def channel_list(self) -> list[str]:
        return split_list(self.channels)

    def clean(self) -> None:
        errors = {}
        if not (self.keyword or "").strip() or (
            self.match_type != self.MatchType.REGEX and not rules.split_words(self.keyword)
        ):
            errors["keyword"] = _("The keyword cannot be empty.")
        elif self.match_type == self.MatchType.REGEX:
            problem = rules.regex_problem(self.keyword)
            if problem:
                errors["keyword"] = problem
        if self.active_from and self.active_until and self.active_from >= self.active_until:
            errors["active_until"] = _("The end must be after the start.")
        if (self.daily_start is None) != (self.daily_end is None):
            errors["daily_end"] = _("Give both a daily start and a daily end, or neither.")
        elif self.daily_start is not None and self.daily_start == self.daily_end:
            errors["daily_end"] = _("The daily start and end must differ.")
        for variable in re.findall(r"\{(\w*)\}", self.reply or ""):
            if variable not in rules.TEMPLATE_VARIABLES:
                errors["reply"] = _("Unknown variable {%(name)s}; use {nickname} or {product}.") % {"name": variable}
                break
        if errors:
            raise ValidationError(errors)


class FaqCategory(TimeStampedModel):
    name = models.CharField(_("name"), max_length=100, unique=True)
    order = models.IntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("FAQ category")
        verbose_name_plural = _("FAQ categories")
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name


class Faq(TimeStampedModel):
    category = models.ForeignKey(
        FaqCategory,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="faqs",
        verbose_name=_("category"),
    )
    question = models.CharField(_("standard question"), max_length=300)
    answer = models.TextField(
        _("answer"), help_text=_("Plain text; **bold**, new lines and lines starting with - are kept.")
    )
    link_url = models.URLField(_("link URL"), blank=True)
    image_url = models.URLField(_("image URL"), blank=True)
    valid_from = models.DateTimeField(_("valid from"), null=True, blank=True)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)

    class Meta:
        verbose_name = _("FAQ")
        verbose_name_plural = _("FAQs")
        ordering = ["category__order", "id"]

    def __str__(self) -> str:
        return self.question

    def clean(self) -> None:
        if self.valid_from and self.valid_until and self.valid_from >= self.valid_until:
            raise ValidationError({"valid_until": _("The end must be after the start.")})


class FaqQuestion(models.Model):
    faq = models.ForeignKey(Faq, on_delete=models.CASCADE, related_name="similar_questions", verbose_name=_("FAQ"))
    text = models.CharField(_("similar question"), max_length=300)

    class Meta:
        verbose_name = _("similar question")
        verbose_name_plural = _("similar questions")
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["faq", "text"], name="uniq_faq_similar_question")]

    def __str__(self) -> str:
        return self.text


class Product(TimeStampedModel):
    name = models.CharField(_("name"), max_length=120)
    sku = models.CharField(_("SKU"), max_length=64, unique=True)
    category = models.CharField(_("category"), max_length=50, blank=True, help_text=_("e.g. 手机, 耳机, 充电器"))
    aliases = models.CharField(
        _("aliases"), max_length=500, blank=True, help_text=_("Other names customers use, separated by commas.")
    )
    price = models.DecimalField(
        _("price"), max_digits=10, decimal_places=2, default=Decimal("0"), validators=[MinValueValidator(0)]
    )
    colors = models.CharField(_("colours"), max_length=300, blank=True, help_text=_("Separated by commas."))
    attributes = models.JSONField(
        _("attributes"),
        default=dict,
        blank=True,
        help_text=_('JSON object, e.g. {"屏幕": "6.7 英寸", "电池": "5000mAh"}'),
    )
    stock = models.IntegerField(_("stock"), default=0)
    enabled = models.BooleanField(_("enabled"), default=True)

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")
        ordering = ["category", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def alias_list(self) -> list[str]:
        return split_list(self.aliases)

    @property
    def color_list(self) -> list[str]:
        return split_list(self.colors)

    def clean(self) -> None:
        if not isinstance(self.attributes, dict):
            raise ValidationError({"attributes": _("Attributes must be a JSON object.")})


class Synonym(TimeStampedModel):
    word = models.CharField(
        _("standard word"), max_length=50, unique=True, help_text=_("What the synonyms are rewritten to.")
    )
    synonyms = models.CharField(_("synonyms"), max_length=500, help_text=_("Separated by commas."))

    class Meta:
        verbose_name = _("synonym")
        verbose_name_plural = _("synonyms")
        ordering = ["word"]

    def __str__(self) -> str:
        return self.word

    @property
    def synonym_list(self) -> list[str]:
        return [s for s in split_list(self.synonyms) if s != self.word]


class Intent(TimeStampedModel):
    class Form(models.TextChoices):
        NONE = "", _("No form")
        LOGISTICS = "logistics", _("Order tracking (asks for the order number)")

    name = models.CharField(_("name"), max_length=60, unique=True, help_text=_("The label used in training data."))
    description = models.CharField(_("description"), max_length=300, blank=True)
    answer = models.TextField(
        _("answer"),
        blank=True,
        help_text=_(
            "Variables: {nickname}, {product}, {price}, {colors}, {stock}. Empty with no form or hand-off: "
            "the bot falls back."
        ),
    )
    form = models.CharField(_("form"), max_length=32, choices=Form.choices, blank=True, default=Form.NONE)
    handoff = models.BooleanField(_("hand off to an agent"), default=False)
    enabled = models.BooleanField(_("enabled"), default=True, help_text=_("Disabled intents are left out of training."))

    class Meta:
        verbose_name = _("intent")
        verbose_name_plural = _("intents")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class IntentExample(models.Model):
    intent = models.ForeignKey(Intent, on_delete=models.CASCADE, related_name="examples", verbose_name=_("intent"))
    text = models.CharField(_("text"), max_length=300)

    class Meta:
        verbose_name = _("training example")
        verbose_name_plural = _("training examples")
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["intent", "text"], name="uniq_intent_example")]

    def __str__(self) -> str:
        return self.text


class IntentModel(TimeStampedModel):
    """One trained version of the intent classifier; exactly one (or none) is active."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        TRAINING = "training", _("Training")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    version = models.PositiveIntegerField(_("version"), unique=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(_("error"), blank=True)
    active = models.BooleanField(_("active"), default=False)
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    progress_note = models.CharField(_("progress note"), max_length=200, blank=True)
    blob = models.BinaryField(_("serialised model"), null=True, blank=True, editable=False)
    metrics = models.JSONField(_("metrics"), default=dict, blank=True)
    labels = models.JSONField(_("intents"), default=list, blank=True)
    vocabulary = models.JSONField(_("vocabulary"), default=list, blank=True, editable=False)
    n_examples = models.PositiveIntegerField(_("examples"), default=0)
    threshold = models.FloatField(
        _("confidence threshold"), null=True, blank=True, help_text=_("Empty: the KEFU_INTENT_THRESHOLD setting.")
    )
    margin = models.FloatField(
        _("ambiguity margin"), null=True, blank=True, help_text=_("Empty: the KEFU_INTENT_MARGIN setting.")
    )
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )

    class Meta:
        verbose_name = _("intent model version")
        verbose_name_plural = _("intent model versions")
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["active"], condition=Q(active=True), name="one_active_intent_model"),
        ]

    def __str__(self) -> str:
        return f"v{self.version}"

    def clean(self) -> None:
        for field in ("threshold", "margin"):
            value = getattr(self, field)
            if value is not None and not 0 <= value <= 1:
                raise ValidationError({field: _("Must be between 0 and 1.")})


class DemoOrder(TimeStampedModel):
    """A stand-in order table for the demo's order-tracking form.

    The routing issue owns real orders (``routing.Order``); it registers its own lookup with
    ``knowledge.context.order_lookup_register`` and this table is then only demo data.
    """

    class Status(models.TextChoices):
        PAID = "paid", _("Paid, not shipped")
        SHIPPED = "shipped", _("Shipped")
        DELIVERED = "delivered", _("Delivered")
        CANCELLED = "cancelled", _("Cancelled")

    order_no = models.CharField(_("order number"), max_length=32, unique=True)
    phone = EncryptedCharField(_("phone"), blank=True, default="")
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PAID)
    items = models.CharField(_("items"), max_length=300, blank=True)
    carrier = models.CharField(_("carrier"), max_length=50, blank=True)
    tracking_no = models.CharField(_("tracking number"), max_length=64, blank=True)
    last_event = models.CharField(_("latest tracking event"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("demo order")
        verbose_name_plural = _("demo orders")
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.order_no


# -- mining results (what customers ask together, what the bot could not answer) -----------------------------


class MiningRun(TimeStampedModel):
    """One run of the association mining (Apriori over conversations) or of the unanswered-question clustering.

    Created in the admin (the operator sets the thresholds) or by beat (weekly, with the last run's settings);
    a Celery task on the ``ml`` queue fills in progress, statistics and the results."""

    class Kind(models.TextChoices):
        RULES = "rules", _("Question associations (Apriori)")
        CLUSTERS = "clusters", _("Unanswered question groups")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Run failed")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.RULES)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    progress_note = models.CharField(_("progress note"), max_length=200, blank=True)
    days = models.PositiveIntegerField(
        _("days"), default=90, validators=[MinValueValidator(1)], help_text=_("Conversations of the last N days.")
    )
    min_support = models.FloatField(
        _("minimum support"),
        default=0.01,
        help_text=_("Share of conversations a group of topics must appear in (0-1), e.g. 0.01 = 1 %."),
    )
    min_confidence = models.FloatField(
        _("minimum confidence"),
        default=0.3,
        help_text=_("Share of the conversations with the first topics that also have the second (0-1)."),
    )
    max_length = models.PositiveSmallIntegerField(
        _("topics per rule at most"), default=2, help_text=_("2 gives pairs, which can be linked as related FAQs.")
    )
    max_questions = models.PositiveIntegerField(
        _("questions at most"), default=4000, help_text=_("Clustering: the most recent unanswered questions taken.")
    )
    stats = models.JSONField(_("statistics"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )

    class Meta:
        verbose_name = _("mining run")
        verbose_name_plural = _("mining runs")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    def clean(self) -> None:
        errors = {}
        if not 0 < self.min_support <= 1:
            errors["min_support"] = _("Must be above 0 and at most 1.")
        if not 0 <= self.min_confidence <= 1:
            errors["min_confidence"] = _("Must be between 0 and 1.")
        if not 1 <= self.max_length <= 4:
            errors["max_length"] = _("Must be between 1 and 4.")
        if not 2 <= self.max_questions <= 20000:
            errors["max_questions"] = _("Must be between 2 and 20000.")
        if self.days > 3660:
            errors["days"] = _("Must be at most 3660.")
        if errors:
            raise ValidationError(errors)


class AssociationRule(TimeStampedModel):
    """One rule "customers who ask about X also ask about Y" found by a mining run. The same rule found again by
    a later run keeps its status (an accepted or dismissed rule is not asked about twice)."""

    class Status(models.TextChoices):
        NEW = "new", _("New")
        ACCEPTED = "accepted", _("Accepted (FAQs linked)")
        DISMISSED = "dismissed", _("Dismissed")

    run = models.ForeignKey(
        MiningRun,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="rules",
        verbose_name=_("last found by"),
    )
    lhs = models.JSONField(_("when customers ask about"), default=list)
    rhs = models.JSONField(_("they also ask about"), default=list)
    lhs_key = models.CharField(_("antecedent key"), max_length=300, editable=False)
    rhs_key = models.CharField(_("consequent key"), max_length=300, editable=False)
    lhs_label = models.CharField(_("antecedent"), max_length=600, blank=True)
    rhs_label = models.CharField(_("consequent"), max_length=600, blank=True)
    support = models.FloatField(_("rule support"), help_text=_("Share of conversations with every topic of the rule."))
    confidence = models.FloatField(_("confidence"))
    lift = models.FloatField(_("lift"))
    count = models.PositiveIntegerField(_("conversations"), default=0)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.NEW, db_index=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)

    class Meta:
        verbose_name = _("question association")
        verbose_name_plural = _("question associations")
        ordering = ["-lift", "-confidence", "id"]
        constraints = [models.UniqueConstraint(fields=["lhs_key", "rhs_key"], name="uniq_association_rule")]

    def __str__(self) -> str:
        return f"{self.lhs_label or self.lhs_key} → {self.rhs_label or self.rhs_key}"

    @property
    def faq_pair(self) -> tuple[int, int] | None:
        """(antecedent FAQ id, consequent FAQ id) when the rule links exactly one FAQ to one FAQ."""
        if len(self.lhs) == 1 and len(self.rhs) == 1:
            a, b = str(self.lhs[0]), str(self.rhs[0])
            if a.startswith("faq:") and b.startswith("faq:") and a[4:].isdigit() and b[4:].isdigit():
                return int(a[4:]), int(b[4:])
        return None


class FaqRelation(models.Model):
    """An FAQ the bot offers after answering another ("您可能还想了解：..."), from an accepted association rule or
    added by hand."""

    faq = models.ForeignKey(Faq, on_delete=models.CASCADE, related_name="relations", verbose_name=_("FAQ"))
    related = models.ForeignKey(Faq, on_delete=models.CASCADE, related_name="+", verbose_name=_("related FAQ"))
    rule = models.ForeignKey(
        AssociationRule,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="relations",
        verbose_name=_("association rule"),
    )
    score = models.FloatField(_("order"), default=0, help_text=_("Higher is offered first (the rule's lift)."))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("related FAQ")
        verbose_name_plural = _("related FAQs")
        ordering = ["-score", "id"]
        constraints = [
            models.UniqueConstraint(fields=["faq", "related"], name="uniq_faq_relation"),
            models.CheckConstraint(condition=~Q(faq=models.F("related")), name="faq_relation_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.faq_id} → {self.related_id}"


class UnansweredCluster(TimeStampedModel):
    """A group of similar customer questions the bot could not answer (fallback or hand-off). The label, examples
    and keywords are the customers' own words, so they are encrypted at rest like messages."""

    class Status(models.TextChoices):
        NEW = "new", _("New")
        DRAFTED = "drafted", _("Draft FAQ created")
        DISMISSED = "dismissed", _("Dismissed")

    run = models.ForeignKey(
        MiningRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="clusters", verbose_name=_("run")
    )
    label = EncryptedTextField(_("typical question"))
    size = models.PositiveIntegerField(_("questions"), default=0)
    examples = EncryptedJSONField(_("examples"), default=list, blank=True)
    keywords = EncryptedJSONField(_("keywords"), default=list, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.NEW, db_index=True)
    draft_faq = models.ForeignKey(
        Faq,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="source_clusters",
        verbose_name=_("draft FAQ"),
    )

    class Meta:
        verbose_name = _("unanswered question group")
        verbose_name_plural = _("unanswered question groups")
        ordering = ["-created_at", "-size", "id"]

    def __str__(self) -> str:
        return self.label[:60]
