"""Multi-turn context: per-conversation state in Redis, entities in a message, the product catalogue in
memory, and the order lookup hook.

* State lives at ``kefu:ctx:<conversation_id>`` (JSON) and expires after ``KEFU_CONTEXT_TTL_SECONDS``
  (default 30 minutes) without a message. Redis being down only makes the bot forget: every read and write
  here degrades to "no context" instead of failing the message.
* Entities: products (names, aliases, SKU, through one Aho–Corasick automaton built per catalogue
  version), colours, order numbers, phone numbers and amounts.
* Orders: knowledge may not import the app that owns orders, so it asks a registered lookup function
  (``order_lookup_register``). ``knowledge.apps`` registers one over ``DemoOrder`` (the demo's order table);
  the routing app registers its own over ``routing.Order`` when it exists, replacing the demo one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import ahocorasick
from django.conf import settings

from core import redis as kredis
from knowledge import versions
from knowledge.ml.normalize import normalize

logger = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 1800


def ttl_seconds() -> int:
    return int(getattr(settings, "KEFU_CONTEXT_TTL_SECONDS", DEFAULT_TTL_SECONDS))


def context_key(conversation_id: int) -> str:
    return kredis.key("ctx", conversation_id)


# -- dialogue state ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class DialogueState:
    last_product: int | None = None
    last_intent: str = ""
    slots: dict[str, Any] = dataclasses.field(default_factory=dict)
    form: dict[str, Any] | None = None  # {"name", "slot", "attempts", ...} while a form is open
    pending: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # numbered choices offered
    turns: int = 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, default=str)

    @classmethod
    def from_json(cls, raw: str | None) -> DialogueState:
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            names = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in names})
        except (ValueError, TypeError):
            return cls()

    def summary(self) -> dict[str, Any]:
        return {
            "product": self.last_product,
            "intent": self.last_intent,
            "form": (self.form or {}).get("name"),
            "pending": len(self.pending),
            "turn": self.turns,
        }


def state_load(conversation_id: int | None) -> DialogueState:
    if conversation_id is None:
        return DialogueState()
    if settings.KEFU_EMBEDDED:
        return DialogueState.from_json(_embedded.get(conversation_id))
    try:
        return DialogueState.from_json(kredis.client().get(context_key(conversation_id)))
    except Exception:  # noqa: BLE001 - Redis down: answer without context rather than not at all
        logger.warning("dialogue context unavailable", extra={"conversation_id": conversation_id})
        return DialogueState()


def state_save(conversation_id: int | None, state: DialogueState) -> None:
    if conversation_id is None:
        return
    if settings.KEFU_EMBEDDED:
        _embedded[conversation_id] = state.to_json()
        return
    try:
        kredis.client().set(context_key(conversation_id), state.to_json(), ex=ttl_seconds())
    except Exception:  # noqa: BLE001
        logger.warning("dialogue context not saved", extra={"conversation_id": conversation_id})


def state_clear(conversation_id: int) -> None:
    if settings.KEFU_EMBEDDED:
        _embedded.pop(conversation_id, None)
        return
    kredis.client().delete(context_key(conversation_id))


_embedded: dict[int, str] = {}


# -- catalogue --------------------------------------------------------------------------------------------

BASE_COLORS = ("黑", "白", "蓝", "红", "绿", "紫", "粉", "金", "银", "灰", "黄", "橙", "青", "棕")


@dataclasses.dataclass(frozen=True)
class ProductInfo:
    id: int
    name: str
    sku: str
    category: str
    price: Decimal
    colors: tuple[str, ...]
    attributes: dict[str, Any]
    stock: int

    def colors_text(self) -> str:
        return "、".join(self.colors) if self.colors else ""

    def colors_like(self, color: str) -> list[str]:
        """This product's colours matching an asked colour ("黑色" matches "星空黑")."""
        base = color.removesuffix("色")
        return [c for c in self.colors if c == color or (base and base in c)]


class Catalog:
    """Products, colours and synonyms of the shop, with automata for finding them in text."""

    def __init__(
        self, products: list[ProductInfo], names: dict[int, list[str]], synonyms: dict[str, list[str]]
    ) -> None:
        self.products = {p.id: p for p in products}
        self.synonyms = synonyms
        self._names: Any = None
        name_map: dict[str, int] = {}
        for product in products:
            for raw in names.get(product.id, []):
                word = normalize(raw)
                if len(word) >= 2 and word not in name_map:
                    name_map[word] = product.id
        if name_map:
            self._names = ahocorasick.Automaton()
            for word, pid in name_map.items():
                self._names.add_word(word, (word, pid))
            self._names.make_automaton()
        self.name_words = sorted(name_map)
        colors: set[str] = {f"{c}色" for c in BASE_COLORS}
        for product in products:
            colors.update(normalize(c) for c in product.colors if normalize(c))
        self._colors = ahocorasick.Automaton()
        for color in colors:
            self._colors.add_word(color, color)
        self._colors.make_automaton()
        self.color_words = sorted(colors)
        self.attribute_names = sorted({normalize(k) for p in products for k in p.attributes if normalize(k)})
        self._rewrite: Any = None
        rewrite: dict[str, str] = {}
        for word, variants in synonyms.items():
            for variant in variants:
                v = normalize(variant)
                if v and v != word:
                    rewrite[v] = word
        if rewrite:
            self._rewrite = ahocorasick.Automaton()
            for variant, word in rewrite.items():
                self._rewrite.add_word(variant, (variant, word))
            self._rewrite.make_automaton()

    def dictionary_words(self) -> list[str]:
        """Custom words for jieba: product names and aliases, colours, synonyms."""
        words = list(self.name_words) + list(self.color_words)
        for word, variants in self.synonyms.items():
            words.append(word)
            words.extend(variants)
        return words

    def find_products(self, text: str) -> list[int]:
        """Products named in normalised ``text``, in order of appearance, longest name first on overlap."""
        if self._names is None or not text:
            return []
        found: list[tuple[int, int, int]] = []  # (start, -length, id)
        for end, (word, pid) in self._names.iter(text):
            found.append((end - len(word) + 1, -len(word), pid))
        found.sort()
        out: list[int] = []
        covered_until = -1
        for start, neg_len, pid in found:
            if start <= covered_until:
                continue
            covered_until = start - neg_len - 1
            if pid not in out:
                out.append(pid)
        return out

    def without_products(self, text: str) -> str:
        """``text`` with every product name, alias or SKU cut out."""
        if self._names is None or not text:
            return text
        keep = [True] * len(text)
        for end, (word, _pid) in self._names.iter(text):
            for i in range(end - len(word) + 1, end + 1):
                keep[i] = False
        return "".join(ch for ch, k in zip(text, keep, strict=True) if k)

    def find_colors(self, text: str) -> list[str]:
        out: list[str] = []
        for _end, color in self._colors.iter_long(text):
            if color not in out:
                out.append(color)
        return out

    def rewrite(self, text: str) -> str:
        """Replace synonyms by their standard word (longest match first)."""
        if self._rewrite is None or not text:
            return text
        parts: list[str] = []
        last = 0
        for end, (variant, word) in self._rewrite.iter_long(text):
            start = end - len(variant) + 1
            parts.append(text[last:start])
            parts.append(word)
            last = end + 1
        parts.append(text[last:])
        return "".join(parts)


def _load_catalog() -> Catalog:
    from knowledge.models import Product, Synonym

    products: list[ProductInfo] = []
    names: dict[int, list[str]] = {}
    for p in Product.objects.filter(enabled=True).order_by("id"):
        products.append(
            ProductInfo(
                id=p.id,
                name=p.name,
                sku=p.sku,
                category=p.category,
                price=p.price,
                colors=tuple(p.color_list),
                attributes=dict(p.attributes or {}),
                stock=p.stock,
            )
        )
        names[p.id] = [p.name, p.sku, *p.alias_list]
    synonyms = {normalize(s.word): [normalize(v) for v in s.synonym_list] for s in Synonym.objects.all()}
    return Catalog(products, names, {k: v for k, v in synonyms.items() if k})


catalog_cache = versions.cached("catalog", _load_catalog)


# -- entities ---------------------------------------------------------------------------------------------

PHONE_RE = re.compile(r"(?<!\d)(1[3-9]\d{9})(?!\d)")
ORDER_RE = re.compile(r"(?<![0-9a-z])((?:[a-z]{1,4}-?)?\d{10,24})(?![0-9])")
AMOUNT_RE = re.compile(r"(?:¥\s*(\d+(?:\.\d{1,2})?))|(?:(?<![\d.])(\d+(?:\.\d{1,2})?)\s*(?:元|块钱|块|rmb|人民币))")


@dataclasses.dataclass(frozen=True)
class Entities:
    products: tuple[int, ...] = ()
    colors: tuple[str, ...] = ()
    order_numbers: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    amounts: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, list]:
        return {k: list(v) for k, v in dataclasses.asdict(self).items() if v}

    def for_trace(self) -> dict[str, Any]:
        """Catalogue entities as they are; personal ones (orders, phones, amounts) only counted."""
        out: dict[str, Any] = {}
        if self.products:
            out["products"] = list(self.products)
        if self.colors:
            out["colors"] = list(self.colors)
        for name in ("order_numbers", "phones", "amounts"):
            if getattr(self, name):
                out[name] = len(getattr(self, name))
        return out


def extract_entities(text: str, catalog: Catalog | None) -> Entities:
    """Entities in normalised ``text``; total (never raises on odd input)."""
    if not text:
        return Entities()
    phones = tuple(dict.fromkeys(PHONE_RE.findall(text)))
    orders = tuple(o.upper() for o in dict.fromkeys(ORDER_RE.findall(text)) if o not in phones)
    amounts = tuple(a or b for a, b in AMOUNT_RE.findall(text))
    products: tuple[int, ...] = ()
    colors: tuple[str, ...] = ()
    if catalog is not None:
        products = tuple(catalog.find_products(text))
        colors = tuple(catalog.find_colors(text))
    return Entities(products=products, colors=colors, order_numbers=orders, phones=phones, amounts=amounts)


# -- orders -----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OrderInfo:
    order_no: str
    status: str  # human-readable, already translated
    items: str = ""
    carrier: str = ""
    tracking_no: str = ""
    last_event: str = ""


OrderLookup = Callable[[str], "OrderInfo | None"]
_order_lookup: OrderLookup | None = None


def order_lookup_register(lookup: OrderLookup | None) -> None:
    """Install the function that finds an order by its number (the last registration wins)."""
    global _order_lookup
    _order_lookup = lookup


def order_lookup(order_no: str) -> OrderInfo | None:
    if _order_lookup is None:
        return None
    return _order_lookup(order_no)
