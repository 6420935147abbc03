"""The routing admin renders (Chinese UI, customer card) and merges customers."""

import pytest
from django.contrib.auth.models import User

from routing.demo import seed_routing
from routing.models import ChannelCustomer, CustomerLink, Order, Person, Ticket
from routing.services import handoff_start

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, web_channel, redis_clean):
    User.objects.create_superuser("root", "root@example.com", "pw-long-enough-1")
    client.login(username="root", password="pw-long-enough-1")
    seed_routing()
    return client


def test_every_routing_admin_page_renders(admin_client, make_customer):
    customer = make_customer("张女士")
    handoff_start(customer.conversation.id, "customer_request", text="转人工")
    person = Person.objects.order_by("-id").first()
    pages = [
        "/admin/routing/",
        "/admin/routing/person/",
        f"/admin/routing/person/{person.id}/change/",
        "/admin/routing/channelcustomer/",
        f"/admin/routing/channelcustomer/{customer.id}/change/",
        "/admin/routing/order/",
        "/admin/routing/order/import/",
        "/admin/routing/rfmscore/",
        "/admin/routing/agentgroup/",
        "/admin/routing/agentprofile/",
        "/admin/routing/routingrule/",
        "/admin/routing/routingrule/add/",
        "/admin/routing/ticket/",
        f"/admin/routing/ticket/{Ticket.objects.get().id}/change/",
        "/admin/routing/cannedreply/",
        "/admin/routing/holiday/",
        "/admin/routing/tag/",
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
    card = admin_client.get(f"/admin/routing/channelcustomer/{customer.id}/change/").content.decode()
    assert "客户卡片" in card and "客户等级" in card and "累计消费" in card


def test_merge_selected_customers_action(admin_client, make_customer, add_orders):
    a, b = make_customer("甲"), make_customer("甲（公众号）")
    add_orders(a, [(3, 100)])
    add_orders(b, [(9, 50)])
    response = admin_client.post(
        "/admin/routing/channelcustomer/",
        {"action": "merge_selected", "_selected_action": [a.id, b.id]},
        follow=True,
    )
    assert response.status_code == 200
    assert "已合并为同一客户档案" in response.content.decode()
    person_ids = set(CustomerLink.objects.filter(customer__in=[a, b]).values_list("person_id", flat=True))
    assert len(person_ids) == 1
    assert Order.objects.filter(customer__in=[a, b], person_id__in=person_ids).count() == 2
    assert ChannelCustomer.objects.filter(pk__in=[a.id, b.id]).count() == 2
