"""core.fastsql writes and reads rows as the ORM does (encryption, JSON, auto_now), on real PostgreSQL."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import signals

from bots.models import Channel, Conversation, Customer, Message, Outbox
from core import crypto, fastsql


@pytest.fixture
def conversation(db):
    channel = Channel.objects.create(kind=Channel.Kind.WEB, slug="fast", name="fast")
    customer = Customer.objects.create(channel=channel, external_id="c1", nickname="小王")
    return Conversation.objects.create(customer=customer, channel=channel)


def test_the_message_path_models_have_no_signal_receivers():
    """fastsql sends no signals: a receiver added for these models would silently not run."""
    for model in (Message, Outbox, Conversation, Customer, Channel):
        for signal in (signals.pre_save, signals.post_save):
            assert not signal.has_listeners(model), (model.__name__, signal)


def test_insert_stores_what_the_orm_would(conversation):
    message = fastsql.insert(
        Message(
            conversation=conversation,
            channel=conversation.channel,
            direction=Message.Direction.IN,
            sender=Message.Sender.CUSTOMER,
            content="我的手机号 13800138000",
            meta={"room_id": "r1", "emoji": "📦"},
            external_id="x1",
        )
    )
    assert message.pk and not message._state.adding and message.created_at is not None
    loaded = Message.objects.get(pk=message.pk)
    assert (loaded.content, loaded.meta) == ("我的手机号 13800138000", {"room_id": "r1", "emoji": "📦"})
    assert loaded.created_at == message.created_at
    with connection.cursor() as cursor:
        cursor.execute("SELECT content FROM bots_message WHERE id = %s", [message.pk])
        stored = cursor.fetchone()[0]
    assert crypto.is_encrypted(stored) and "13800138000" not in stored  # encrypted at rest, as with the ORM

    outbox = fastsql.insert(Outbox(message=message, channel=conversation.channel, idempotency_key="k" * 32))
    assert Outbox.objects.get(pk=outbox.pk).status == Outbox.Status.PENDING  # model defaults apply
    with pytest.raises(IntegrityError), transaction.atomic():
        fastsql.insert(
            Message(
                conversation=conversation,
                channel=conversation.channel,
                direction=Message.Direction.IN,
                sender=Message.Sender.CUSTOMER,
                external_id="x1",
            )
        )


def test_update_writes_only_the_named_fields(conversation):
    before = Conversation.objects.get(pk=conversation.pk)
    conversation.status = Conversation.Status.HUMAN
    conversation.resolved_at = None
    fastsql.update(conversation, ["status"])
    after = Conversation.objects.get(pk=conversation.pk)
    assert after.status == Conversation.Status.HUMAN
    assert after.updated_at == before.updated_at  # auto_now only when named, as with save(update_fields=…)
    fastsql.update(conversation, ["updated_at"])
    assert Conversation.objects.get(pk=conversation.pk).updated_at > before.updated_at


def test_joined_rows_load_like_the_orm(conversation):
    conversation.customer.phone = "13900001111"
    conversation.customer.save()
    sql = (
        f"SELECT {fastsql.columns_sql(Conversation, 'cv')}, {fastsql.columns_sql(Customer, 'cu')} "
        "FROM bots_conversation cv JOIN bots_customer cu ON cu.id = cv.customer_id WHERE cv.id = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [conversation.pk])
        loaded_conversation, loaded_customer = fastsql.instances_from_row(cursor.fetchone(), (Conversation, Customer))
    assert loaded_customer.phone == "13900001111" and loaded_customer.nickname == "小王"
    assert loaded_conversation.pk == conversation.pk and not loaded_conversation._state.adding
    orm = Customer.objects.get(pk=loaded_customer.pk)
    for field in Customer._meta.concrete_fields:
        assert getattr(loaded_customer, field.attname) == getattr(orm, field.attname), field.name


@pytest.mark.django_db
def test_insert_new_stores_a_row_or_answers_none_on_a_unique_conflict(conversation):
    channel = conversation.channel
    stored = fastsql.insert_new(Customer(channel=channel, external_id="c2", nickname="小张"))
    assert stored is not None and stored.pk and not stored._state.adding
    assert Customer.objects.get(pk=stored.pk).nickname == "小张"
    again = fastsql.insert_new(Customer(channel=channel, external_id="c2", nickname="别人"))
    assert again is None
    assert Customer.objects.get(channel=channel, external_id="c2").nickname == "小张"
    with connection.cursor() as cursor:  # the transaction is still usable: nothing was raised
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


@pytest.mark.django_db
def test_first_row_loads_what_the_orm_loads_or_none(conversation):
    channel = conversation.channel
    channel.secrets = '{"secret": "s3cr3t"}'
    channel.settings = {"send_url": "http://127.0.0.1:9/send", "rate_per_hour": 0}
    channel.save()
    loaded = fastsql.first_row(Channel, {"slug": "fast", "kind": Channel.Kind.WEB}, ("enabled",))
    orm = Channel.objects.get(pk=channel.pk)
    assert loaded is not None and not loaded._state.adding
    for field in Channel._meta.concrete_fields:
        assert getattr(loaded, field.attname) == getattr(orm, field.attname), field.name
    assert fastsql.first_row(Channel, {"slug": "fast", "kind": Channel.Kind.BRIDGE}, ("enabled",)) is None
    Channel.objects.filter(pk=channel.pk).update(enabled=False)
    assert fastsql.first_row(Channel, {"slug": "fast", "kind": Channel.Kind.WEB}, ("enabled",)) is None
    first = Message.objects.create(
        conversation=conversation, channel=channel, direction="in", content="在吗", external_id="e1"
    )
    found = fastsql.first_row(Message, {"channel": channel.id, "external_id": "e1"})
    assert (found.pk, found.content, found.meta) == (first.pk, "在吗", first.meta)


@pytest.mark.django_db
def test_rows_loads_the_named_fields_converted_and_defers_the_rest(conversation):
    made = [
        Message.objects.create(
            conversation=conversation,
            channel=conversation.channel,
            direction="in",
            content=f"第{i}条 13800138000",
            trace={"kind": "faq", "n": i},
            external_id=f"r{i}",
        )
        for i in range(3)
    ]
    sql = (
        f"SELECT {fastsql.column(Message, 'id')}, {fastsql.column(Message, 'content')}, "
        f"{fastsql.column(Message, 'trace')} FROM {fastsql.table(Message)} WHERE "
        f"{fastsql.column(Message, 'conversation')} = %s ORDER BY {fastsql.column(Message, 'id')} DESC"
    )
    loaded = fastsql.rows(Message, sql, [conversation.pk], ("id", "content", "trace"))
    assert [(m.pk, m.content, m.trace) for m in loaded] == [(m.pk, m.content, m.trace) for m in reversed(made)]
    assert loaded[0].get_deferred_fields() >= {"meta", "external_id", "created_at"}
    assert fastsql.rows(Message, sql, [-1], ("id", "content", "trace")) == []
