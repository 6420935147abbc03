"""People behind channel customers: the link, the merge of customers seen on several channels, tags."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import IntegrityError, transaction

from bots.models import Customer
from core.errors import ApplicationError
from routing.models import CustomerLink, Order, Person, RfmScore, Tag, Ticket

logger = logging.getLogger(__name__)


def person_id_for_customer(customer_id: int) -> int | None:
    """The person a channel customer is linked to, or None (no order, no merge, no hand-off yet)."""
    return CustomerLink.objects.filter(customer_id=customer_id).values_list("person_id", flat=True).first()


@transaction.atomic
def person_for_customer(*, customer_id: int) -> Person:
    """The customer's person, created (named after the customer's nickname) on first need."""
    link = CustomerLink.objects.select_related("person").filter(customer_id=customer_id).first()
    if link is not None:
        return link.person
    customer = Customer.objects.filter(pk=customer_id).first()
    if customer is None:
        raise ApplicationError("unknown customer", code="unknown_customer", status=404)
    person = Person.objects.create(name=customer.nickname or "")
    try:
        with transaction.atomic():
            CustomerLink.objects.create(customer_id=customer_id, person=person)
    except IntegrityError:  # a concurrent call linked it first
        person.delete()
        return CustomerLink.objects.select_related("person").get(customer_id=customer_id).person
    return person


@transaction.atomic
def persons_merge(*, person_ids: Iterable[int], into_id: int | None = None) -> Person:
    """Merge people into one (by default the oldest): their channel customers, orders, tickets, tags and
    notes move over, the others are deleted (with their RFM rows and sorted-set members), and an RFM
    recompute is requested so the merged person's scores reflect all their orders."""
    ids = sorted(set(person_ids))
    if into_id is not None and into_id not in ids:
        ids.append(into_id)
    people = list(Person.objects.select_for_update().filter(pk__in=ids).order_by("id"))
    if not people:
        raise ApplicationError("nothing to merge", code="nothing_to_merge")
    target = next((p for p in people if p.pk == into_id), people[0])
    others = [p for p in people if p.pk != target.pk]
    if not others:
        return target
    other_ids = [p.pk for p in others]
    CustomerLink.objects.filter(person_id__in=other_ids).update(person=target)
    Order.objects.filter(person_id__in=other_ids).update(person=target)
    Ticket.objects.filter(person_id__in=other_ids).update(person=target)
    tags = set(Tag.objects.filter(people__in=other_ids).values_list("pk", flat=True))
    if tags:
        target.tags.add(*tags)
    if not target.name:
        target.name = next((p.name for p in others if p.name), "")
    notes = [n for n in [target.note, *(p.note for p in others)] if n]
    target.note = "\n".join(dict.fromkeys(notes))
    target.save(update_fields=["name", "note", "updated_at"])
    RfmScore.objects.filter(person_id__in=other_ids).delete()
    Person.objects.filter(pk__in=other_ids).delete()

    from routing.services import rfm

    transaction.on_commit(lambda: rfm.zset_remove(other_ids))
    rfm.rfm_recompute_request()
    logger.info("people merged", extra={"person_id": target.pk, "merged": other_ids})
    return target


@transaction.atomic
def customers_merge(*, customer_ids: Iterable[int]) -> Person:
    """Link several channel customers (e.g. the same buyer on the Official Account and on WeCom) to one
    person. Customers without a person yet get one first; the oldest person is kept."""
    ids = sorted(set(customer_ids))
    if len(ids) < 2:
        raise ApplicationError("choose at least two customers to merge", code="nothing_to_merge")
    found = set(Customer.objects.filter(pk__in=ids).values_list("pk", flat=True))
    if found != set(ids):
        raise ApplicationError("unknown customer", code="unknown_customer", status=404)
    person_ids = [person_for_customer(customer_id=c).pk for c in ids]
    return persons_merge(person_ids=person_ids)


@transaction.atomic
def person_tags_set(*, person_id: int, names: Iterable[str]) -> list[str]:
    """Replace a person's tags with ``names`` (tags are created on first use)."""
    person = Person.objects.get(pk=person_id)
    clean = sorted({n.strip()[:40] for n in names if n and n.strip()})
    tags = [Tag.objects.get_or_create(name=n)[0] for n in clean]
    person.tags.set(tags)
    return clean
