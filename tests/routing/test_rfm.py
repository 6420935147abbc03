"""RFM recompute on the real PostgreSQL and Redis: database rows, the sorted set, lookups, recovery."""

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from routing.models import Order, Person, RfmScore
from routing.services import customers_merge, rfm, rfm_lookup, rfm_recompute
from tests.conftest import running_worker, wait_for


def _shop(make_customer, add_orders):
    """Ten buyers with different habits and two customers without orders."""
    people = []
    for i in range(10):
        customer = make_customer(f"买家{i}", conversation=False)
        orders = [(3 + i * 20 + k * 7, 100 * (i + 1) + k) for k in range(1 + i % 4)]
        people.append(add_orders(customer, orders))
    for i in range(2):
        customer = make_customer(f"路人{i}", conversation=False)
        from routing.services import person_for_customer

        people.append(person_for_customer(customer_id=customer.id))
    return people


def test_recompute_writes_rows_and_sorted_set_and_lookups_agree(db, redis_clean, make_customer, add_orders):
    people = _shop(make_customer, add_orders)
    run = rfm_recompute()
    assert (run.people, run.with_orders, run.redis_written) == (12, 10, True)
    rows = {r.person_id: r for r in RfmScore.objects.all()}
    assert set(rows) == {p.id for p in people}
    assert redis_clean.zcard(rfm.ZSET_KEY) == 12
    scores = [r.score for r in rows.values()]
    for person_id, row in rows.items():
        lookup = rfm_lookup(person_id=person_id, with_segment=True)
        assert lookup.source == "redis"
        assert (lookup.score, lookup.tier, lookup.segment) == (row.score, row.tier, row.segment)
        assert redis_clean.zscore(rfm.ZSET_KEY, person_id) == row.score
        better = sum(s > row.score for s in scores)
        assert better <= lookup.rank < better + scores.count(row.score)
    # people without orders: the floor of every scale
    for person in people[10:]:
        row = rows[person.id]
        assert (row.r, row.f, row.m, row.tier, row.score, row.frequency) == (1, 1, 1, "low", 0.0, 0)
    # the aggregates are right
    heavy = rows[people[3].id]
    assert heavy.frequency == 4
    assert heavy.monetary == sum(o.amount for o in Order.objects.filter(person=people[3]))
    assert {r.tier for r in rows.values()} >= {"low"}
    # a person never scored (created after the run) is tier low from the database
    assert rfm_lookup(person_id=10**9).tier == "low"


def test_recompute_aggregates_in_one_query_and_replaces_the_set(db, redis_clean, make_customer, add_orders):
    _shop(make_customer, add_orders)
    redis_clean.zadd(rfm.ZSET_KEY, {"999999": 50.0})  # a stale member from an earlier run
    with CaptureQueriesContext(connection) as queries:
        rfm_recompute()
    grouped = [q["sql"] for q in queries.captured_queries if "GROUP BY" in q["sql"]]
    assert len(grouped) == 1 and "routing_order" in grouped[0]
    assert redis_clean.zscore(rfm.ZSET_KEY, "999999") is None  # replaced as a whole, not merged
    assert not redis_clean.keys("kefu:rfm:tmp:*")
    # a second run upserts (same rows, no duplicates)
    rfm_recompute()
    assert RfmScore.objects.count() == Person.objects.count() == 12


def test_command_prints_progress(db, redis_clean, make_customer, add_orders):
    _shop(make_customer, add_orders)
    out = io.StringIO()
    call_command("rfm_recompute", stdout=out)
    text = out.getvalue()
    assert "aggregating" in text and "scored 12 people" in text and "sorted set" in text
    assert "rfm_recompute: 12 people (10 with orders)" in text


def test_merge_moves_orders_to_one_person(
    db, redis_clean, make_customer, add_orders, django_capture_on_commit_callbacks
):
    from bots.models import Channel

    oa = Channel.objects.create(kind=Channel.Kind.OA, slug="oa-shop", name="公众号")
    web_customer = make_customer("张三", conversation=False)
    oa_customer = make_customer("张三", channel=oa, conversation=False)
    first = add_orders(web_customer, [(5, 100), (40, 200)])
    second = add_orders(oa_customer, [(10, 300)])
    rfm_recompute()
    with django_capture_on_commit_callbacks(execute=True):
        person = customers_merge(customer_ids=[web_customer.id, oa_customer.id])
    assert person.id == min(first.id, second.id)
    assert not Person.objects.filter(pk=max(first.id, second.id)).exists()
    assert set(person.links.values_list("customer_id", flat=True)) == {web_customer.id, oa_customer.id}
    assert Order.objects.filter(person=person).count() == 3
    assert redis_clean.zscore(rfm.ZSET_KEY, max(first.id, second.id)) is None  # removed after commit
    assert redis_clean.exists(rfm.REQUEST_KEY)  # and a recompute was requested
    rfm_recompute()
    row = RfmScore.objects.get(person=person)
    assert (row.frequency, row.monetary) == (3, 600)


@pytest.mark.django_db(transaction=True)
def test_flushed_redis_falls_back_to_the_database_and_recomputes(redis_clean, make_customer, add_orders):
    _shop(make_customer, add_orders)
    rfm_recompute()
    row = RfmScore.objects.order_by("-score").first()
    redis_clean.flushdb()  # Redis restarted without persistence
    lookup = rfm_lookup(person_id=row.person_id)
    assert (lookup.source, lookup.score, lookup.tier) == ("db", row.score, row.tier)
    assert redis_clean.llen("kefu:celery:ml") == 1  # one recompute queued on the slow queue...
    rfm_lookup(person_id=row.person_id)
    assert redis_clean.llen("kefu:celery:ml") == 1  # ...and only one
    with running_worker(queues=("ml",)):
        wait_for(lambda: redis_clean.zcard(rfm.ZSET_KEY) == 12, timeout=20)
    assert rfm_lookup(person_id=row.person_id).source == "redis"
