"""Sensitive words on the message path, against the real PostgreSQL, Redis, Celery worker and a fake bridge HTTP
server: inbound mask / flag / hand-off / block, outbound block (never sent, agents told why) and mask."""

from __future__ import annotations

import json
import uuid

import pytest
from django.utils import timezone

from bots import services
from bots.channels.base import InboundMessage
from bots.models import Channel, Conversation, Customer, Message, Outbox
from core import realtime, sensitive
from core.errors import ApplicationError
from core.models import SensitiveHit, SensitiveWord, SensitiveWordList
from tests.conftest import wait_for
from tests.fakes.wechat_api import FakeWeChat

SECRET = "bridge-shared-secret"
WORDS = [
    ("vx", "引流", "mask"),
    ("加微信", "引流", "flag"),
    ("12315", "投诉升级", "handoff"),
    ("代开发票", "违禁", "block"),
    ("赌博", "违禁", "block"),
]


@pytest.fixture
def words(redis_clean):
    sensitive.cache_reset()
    word_list = SensitiveWordList.objects.create(name="demo")
    for text, category, action in WORDS:
        SensitiveWord.objects.create(word_list=word_list, text=text, category=category, action=action)
    yield word_list
    sensitive.cache_reset()


@pytest.fixture
def fake():
    with FakeWeChat.start() as server:
        server.bridge_secret = SECRET
        yield server


def _bridge(fake: FakeWeChat) -> Channel:
    return Channel.objects.create(
        kind=Channel.Kind.BRIDGE,
        slug="shop",
        name="shop",
        settings={"send_url": fake.base_url + "/bridge/send", "timeout": 2, "rate_per_hour": 0, "min_gap_seconds": 0},
        secrets=json.dumps({"secret": SECRET}),
    )


def _receive(channel: Channel, text: str, sender: str = "wxid_customer_1") -> Message:
    message, created = services.message_receive(
        channel=channel,
        inbound=InboundMessage(external_id=uuid.uuid4().hex, sender_id=sender, type="text", text=text),
    )
    assert created
    return message


def _conversation(channel: Channel) -> Conversation:
    customer = Customer.objects.create(channel=channel, external_id="wxid_customer_1", nickname="张女士")
    return Conversation.objects.create(customer=customer, channel=channel, last_message_at=timezone.now())


# --- inbound -----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_inbound_mask_is_stored_masked_flagged_and_recorded(words, web_channel, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        message = _receive(web_channel, "加 微信 吧，我的 V X 是 abc")
    stored = Message.objects.get(pk=message.pk)
    assert stored.content == "加 微信 吧，我的 ＊＊＊ 是 abc"
    assert stored.meta["sensitive"]["action"] == "mask" and stored.meta["sensitive"]["masked"]
    hit = SensitiveHit.objects.get(message_id=message.pk)
    assert (hit.direction, hit.action, hit.conversation_id) == ("in", "mask", message.conversation_id)
    assert {w["word"] for w in hit.words} == {"vx", "加微信"}
    assert "abc" not in json.dumps(hit.words, ensure_ascii=False)  # the record keeps list words, not the message
    # the bot still answers a masked message as usual (no hand-off, no neutral text)
    services.conversation_handle(message_id=message.pk)
    assert Message.objects.get(pk=message.pk).trace.get("stage") != "sensitive"


@pytest.mark.django_db
def test_inbound_flag_only_records_and_keeps_the_text(words, web_channel):
    message = _receive(web_channel, "能加微信聊吗")
    stored = Message.objects.get(pk=message.pk)
    assert stored.content == "能加微信聊吗"
    assert stored.meta["sensitive"] == {
        "action": "flag",
        "words": [{"word": "加微信", "category": "引流", "action": "flag"}],
        "categories": ["引流"],
        "masked": False,
    }
    assert SensitiveHit.objects.filter(message_id=message.pk, action="flag", reviewed=False).count() == 1


@pytest.mark.django_db
def test_clean_message_is_not_touched(words, web_channel):
    message = _receive(web_channel, "你好，请问发货了吗")
    assert "sensitive" not in Message.objects.get(pk=message.pk).meta
    assert not SensitiveHit.objects.exists()


@pytest.mark.django_db
def test_inbound_handoff_word_hands_the_conversation_to_a_person(words, web_channel):
    from routing.demo import seed_routing
    from routing.models import Ticket

    seed_routing()
    message = _receive(web_channel, "再不处理我就打1 2 3 1 5投诉")
    assert services.conversation_handle(message_id=message.pk) is None  # no bot answer
    ticket = Ticket.objects.get(conversation_id=message.conversation_id)
    assert ticket.reason == "rule"
    assert Conversation.objects.get(pk=message.conversation_id).status in ("queued", "human")
    trace = Message.objects.get(pk=message.pk).trace
    assert trace["stage"] == "sensitive" and trace["sensitive"]["action"] == "handoff"
    assert SensitiveHit.objects.get(message_id=message.pk).action == "handoff"


@pytest.mark.django_db
def test_inbound_block_word_gets_a_neutral_answer_not_the_content(words, web_channel, greeting_rule):
    message = _receive(web_channel, "你好，能赌博吗")  # the greeting rule would match "你好"
    reply = services.conversation_handle(message_id=message.pk)
    from django.utils import translation

    from bots.services.screening import NEUTRAL_REPLY

    with translation.override("zh-hans"):  # the shop's language (the catalogue is compiled by `make messages`)
        assert reply is not None and reply.content == str(NEUTRAL_REPLY)
    assert Message.objects.get(pk=message.pk).content == "你好，能＊＊吗"
    assert SensitiveHit.objects.get(message_id=message.pk).action == "block"


# --- outbound ------------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_reply_with_a_block_word_is_never_sent_and_agents_see_why(words, fake, celery_worker):
    channel = _bridge(fake)
    conversation = _conversation(channel)
    blocked = services.reply_queue(
        conversation=conversation, text="可以给您代*开 发票", sender=Message.Sender.AGENT, trace={"kind": "agent"}
    )
    outbox = Outbox.objects.get(message=blocked)
    assert (outbox.status, outbox.reason) == ("blocked", "sensitive_word")
    stored = Message.objects.get(pk=blocked.pk)
    assert stored.status == "blocked" and stored.content == "可以给您代*开 发票"  # the agent sees what they typed
    label = stored.trace["sensitive"]["reason_label"]
    assert "代开发票" in label and "违禁" in label  # which words, which category
    hit = SensitiveHit.objects.get(outbox_id=outbox.pk)
    assert (hit.direction, hit.action, hit.sender) == ("out", "block", "agent")

    # a clean reply after it goes out through the same real worker: the blocked one never reaches the bridge
    sent = services.reply_queue(conversation=conversation, text="您好，在的")
    wait_for(lambda: Outbox.objects.filter(message=sent, status="sent").exists())
    texts = [r.json["text"] for r in fake.requests_to("/bridge/send")]
    assert texts == ["您好，在的"]
    assert services.outbox_send(outbox_id=outbox.pk) == "blocked"  # a stray task does not send it either
    with pytest.raises(ApplicationError):
        services.outbound.outbox_retry(outbox_id=outbox.pk)  # nor an operator's "send again"
    assert len(fake.requests_to("/bridge/send")) == 1

    # realtime: agents (conversation group) get the message and the blocked delivery with the reason; the customer
    # group never gets the blocked text
    events = realtime.events_since(realtime.conversation_group(conversation.pk), 0)
    updated = [e["payload"] for e in events if e["event"] == "conversation.updated"]
    assert {
        "conversation_id": conversation.pk,
        "message_id": blocked.pk,
        "delivery": "blocked",
        "reason": "sensitive_word",
        "reason_label": label,
    } in updated
    customer_events = realtime.events_since(realtime.customer_group(conversation.customer_id), 0)
    assert all(e["payload"].get("id") != blocked.pk for e in customer_events)
    assert any(e["payload"].get("id") == sent.pk for e in customer_events)


@pytest.mark.django_db(transaction=True)
def test_mask_words_are_masked_before_sending(words, fake, celery_worker):
    conversation = _conversation(_bridge(fake))
    reply = services.reply_queue(conversation=conversation, text="有问题请加我ＶＸ：shop888")
    wait_for(lambda: Outbox.objects.filter(message=reply, status="sent").exists())
    (request,) = fake.requests_to("/bridge/send")
    assert request.json["text"] == "有问题请加我＊＊：shop888"
    assert Message.objects.get(pk=reply.pk).content == "有问题请加我＊＊：shop888"
    assert SensitiveHit.objects.get(message_id=reply.pk).action == "mask"


@pytest.mark.django_db
def test_a_bot_reply_is_screened_too_and_a_disabled_list_blocks_nothing(words, web_channel):
    conversation = _conversation(web_channel)
    bot = services.reply_queue(conversation=conversation, text="本店不支持赌博", trace={"kind": "answer"})
    assert Outbox.objects.get(message=bot).status == "blocked"
    assert Message.objects.get(pk=bot.pk).trace["kind"] == "answer"  # the decision trace is kept
    SensitiveWordList.objects.filter(pk=words.pk).update(enabled=False, version=2)
    sensitive.version_bump()
    again = services.reply_queue(conversation=conversation, text="本店不支持赌博")
    assert Outbox.objects.get(message=again).status == "pending"
