"""微信客服 pulling (``bots.services.wecom.kf_sync``) against the HTTP fake of the WeCom API."""

from __future__ import annotations

import copy
import threading

import pytest

from bots.channels.base import ApiError
from bots.channels.wecom_kf import WecomKfAdapter
from bots.models import Channel, ChannelCursor, Message, Outbox
from bots.services import wecom
from bots.services.channels import channel_upsert
from tests.fakes.wechat_api import FakeWeChat, fixture_json

pytestmark = pytest.mark.django_db(transaction=True)

OPEN_KFID = "wkq3ZxEQAAd8Rk2mYpV5tLs9HnC1bW4x"
CUSTOMER = "wmq3ZxEQAAk7GhT2pLw9RcV4nB8sD1fE"
SYNC = "/cgi-bin/kf/sync_msg"


def fixture_items() -> list[dict]:
    return copy.deepcopy(fixture_json("wecom_kf/sync_msg_response.json")["msg_list"])


def two_pages() -> list[list[dict]]:
    event, text, image, servicer = fixture_items()
    return [[event, text], [image, servicer]]


@pytest.fixture
def fake():
    with FakeWeChat.start() as server:
        yield server


@pytest.fixture
def kf_channel(fake, redis_clean) -> Channel:
    values = {
        "token": "kefuKfToken2026",
        "aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        "corp_id": "ww3f8a2c91d0b7e456",
        "secret": "kf-secret-0123456789abcdef",
        "api_base": fake.base_url,
    }
    return channel_upsert(kind="kf", slug="kf", values=values).channel


def cursor(channel: Channel) -> str:
    return ChannelCursor.objects.get(channel=channel, key=OPEN_KFID).cursor


def test_pages_until_has_more_is_zero_and_saves_the_cursor(fake, kf_channel):
    fake.set_kf_pages(two_pages())
    result = wecom.kf_sync(channel_id=kf_channel.id, token="CALLBACK-TOKEN", open_kfid=OPEN_KFID)
    assert (result.pages, result.stored, result.duplicates) == (2, 4, 0)
    assert cursor(kf_channel) == "c2"
    assert ChannelCursor.objects.get(channel=kf_channel).pages == 2
    calls = fake.requests_to(SYNC)
    assert [c.json.get("cursor") for c in calls] == [None, "c1"]
    assert all(c.json["token"] == "CALLBACK-TOKEN" and c.json["open_kfid"] == OPEN_KFID for c in calls)
    by_id = {m.external_id: m for m in Message.objects.all()}
    event, text, image, servicer = fixture_items()
    assert by_id[event["msgid"]].type == "event" and by_id[event["msgid"]].meta["event"] == "enter_session"
    assert by_id[text["msgid"]].type == "text" and by_id[text["msgid"]].direction == "in"
    assert by_id[image["msgid"]].type == "image"
    agent = by_id[servicer["msgid"]]
    assert (agent.direction, agent.sender, agent.status) == ("out", "agent", Message.Status.SENT)
    assert agent.meta["servicer_userid"] == "LiuXiaomei"
    assert agent.conversation.customer.external_id == CUSTOMER
    assert len({m.conversation_id for m in by_id.values()}) == 1


def test_a_second_pull_with_the_same_messages_stores_nothing_twice(fake, kf_channel):
    fake.set_kf_pages(two_pages())
    wecom.kf_sync(channel_id=kf_channel.id, token="t", open_kfid=OPEN_KFID)
    # WeCom hands out the same messages again (e.g. we lost the cursor): deduplicated by msgid
    ChannelCursor.objects.filter(channel=kf_channel).update(cursor="")
    again = wecom.kf_sync(channel_id=kf_channel.id, token="t", open_kfid=OPEN_KFID)
    assert (again.stored, again.duplicates) == (0, 4)
    assert Message.objects.count() == 4
    assert cursor(kf_channel) == "c2"
    # a pull from the stored cursor finds nothing new and leaves the cursor where it was
    third = wecom.kf_sync(channel_id=kf_channel.id, token="t", open_kfid=OPEN_KFID)
    assert (third.pages, third.stored) == (1, 0)
    assert cursor(kf_channel) == "c2"


def test_the_cursor_never_goes_backwards(fake, kf_channel):
    fake.set_kf_pages(two_pages())
    wecom.kf_sync(channel_id=kf_channel.id, token="t", open_kfid=OPEN_KFID)
    row = ChannelCursor.objects.get(channel=kf_channel)
    assert row.cursor == "c2"
    # a late pull that fetched page 0 from the empty cursor tries to store it: messages deduplicated,
    # cursor left alone (it only moves from the value the page was fetched with)
    late_page = WecomKfAdapter(slug="kf", config={}).map_item(two_pages()[0][1])
    moved, counts = wecom.kf_page_store(
        channel=kf_channel, cursor_id=row.pk, fetched_with="", next_cursor="c1", messages=[late_page]
    )
    assert moved is False
    assert counts.duplicates == 1
    assert cursor(kf_channel) == "c2"


def test_overlapping_pulls_are_serialised_and_a_callback_during_a_pull_is_not_lost(fake, kf_channel):
    from tests.conftest import wait_for

    fake.set_kf_pages(two_pages())
    fake.delay_next(SYNC, 0.4, times=2)  # the first pull is slow
    results: dict[str, wecom.KfSyncResult] = {}
    errors: list[BaseException] = []

    def pull(name: str, token: str):
        try:
            results[name] = wecom.kf_sync(channel_id=kf_channel.id, token=token, open_kfid=OPEN_KFID)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            from django.db import connection

            connection.close()

    first = threading.Thread(target=pull, args=("first", "TOKEN-1"))
    first.start()
    wait_for(lambda: fake.requests_to(SYNC))  # the first pull is reading page 0
    second = threading.Thread(target=pull, args=("second", "TOKEN-2"))
    second.start()
    second.join(10)
    assert not second.is_alive()  # it did not wait for the first pull
    first.join(30)
    assert not errors
    assert results["second"].coalesced and results["second"].pages == 0
    # the first pull read pages 0 and 1, then once more from c2 for the second callback, with its token
    calls = fake.requests_to(SYNC)
    assert [c.json.get("cursor") for c in calls] == [None, "c1", "c2"]
    assert [c.json["token"] for c in calls] == ["TOKEN-1", "TOKEN-1", "TOKEN-2"]
    assert results["first"].pages == 3
    assert Message.objects.count() == 4
    assert cursor(kf_channel) == "c2"


def test_a_pull_works_when_redis_is_down_for_the_lock(fake, kf_channel, settings):
    from bots.channels.base import MemoryTokenStore
    from core import redis as kredis

    fake.set_kf_pages(two_pages())
    adapter = wecom.kf_adapter(kf_channel, token_store=MemoryTokenStore())  # tokens are another test's business
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        result = wecom.kf_sync(channel_id=kf_channel.id, token="t", open_kfid=OPEN_KFID, adapter=adapter)
    finally:
        kredis._client.cache_clear()
    assert (result.stored, cursor(kf_channel)) == (4, "c2")


def test_an_api_failure_keeps_the_cursor_of_the_last_stored_page(fake, kf_channel):
    fake.set_kf_pages(two_pages())
    fake.fail_next(SYNC, status=500, times=1)
    with pytest.raises(ApiError):
        wecom.kf_sync(channel_id=kf_channel.id, token="t", open_kfid=OPEN_KFID)
    assert not Message.objects.exists()
    assert cursor(kf_channel) == ""
    # page 0 stored, then page 1 fails: the next pull resumes at c1
    calls_before = len(fake.requests_to(SYNC))
    original = fake.handle

    def fail_second_page(request):
        if request.path == SYNC and (request.json or {}).get("cursor") == "c1":
            return 200, {"errcode": -1, "errmsg": "system busy"}
        return original(request)

    fake.handle = fail_second_page
    with pytest.raises(ApiError):
        wecom.kf_sync(channel_id=kf_channel.id, token="t", open_kfid=OPEN_KFID)
    assert cursor(kf_channel) == "c1"
    assert Message.objects.count() == 2
    fake.handle = original
    result = wecom.kf_sync(channel_id=kf_channel.id, token="t", open_kfid=OPEN_KFID)
    assert (result.stored, cursor(kf_channel)) == (2, "c2")
    assert [c.json.get("cursor") for c in fake.requests_to(SYNC)[calls_before:]] == [None, "c1", "c1"]


def test_an_echo_of_our_own_send_and_customerless_events_are_skipped(fake, kf_channel):
    from bots.models import Conversation, Customer

    customer = Customer.objects.create(channel=kf_channel, external_id=CUSTOMER)
    conversation = Conversation.objects.create(customer=customer, channel=kf_channel)
    ours = Message.objects.create(
        conversation=conversation, channel=kf_channel, direction="out", sender="bot", content="您好", status="sent"
    )
    Outbox.objects.create(message=ours, channel=kf_channel, idempotency_key="0f9a3c1d2b4e5f60718293a4b5c6d7e8")
    echo = {
        "msgid": "0f9a3c1d2b4e5f60718293a4b5c6d7e8",
        "open_kfid": OPEN_KFID,
        "external_userid": CUSTOMER,
        "send_time": 1749521800,
        "origin": 5,
        "msgtype": "text",
        "text": {"content": "您好"},
    }
    status_change = {
        "msgid": "evt-servicer-status-1",
        "send_time": 1749521801,
        "origin": 4,
        "msgtype": "event",
        "event": {"event_type": "servicer_status_change", "servicer_userid": "LiuXiaomei", "status": 1},
    }
    fake.set_kf_pages([[echo, status_change]])
    result = wecom.kf_sync(channel_id=kf_channel.id, token="t", open_kfid=OPEN_KFID)
    assert (result.stored, result.skipped) == (0, 2)
    assert Message.objects.count() == 1


def test_a_disabled_channel_is_not_pulled(fake, kf_channel):
    Channel.objects.filter(pk=kf_channel.pk).update(enabled=False)
    fake.set_kf_pages(two_pages())
    assert wecom.kf_sync(channel_id=kf_channel.id, token="t", open_kfid=OPEN_KFID).pages == 0
    assert fake.requests_to(SYNC) == []
