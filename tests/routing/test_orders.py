"""Orders: the REST API (token auth, model permissions, validation, upsert by number) and the CSV import."""

import pytest
import tablib
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from routing.models import Order, Person
from routing.resources import OrderResource

pytestmark = pytest.mark.django_db


def _client(*perms: str) -> APIClient:
    user = User.objects.create_user(f"shop-{User.objects.count()}", password="pw-long-enough-1")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="routing", codename__in=perms))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def _order(buyer, **extra):
    return {
        "number": "E20260301001",
        "customer": buyer.id,
        "amount": "199.90",
        "paid_at": "2026-03-01T14:30:00+08:00",
        "items": [{"sku": "TEE-01", "qty": 2}],
        "status": "paid",
        **extra,
    }


def test_post_creates_then_updates_by_number(make_customer):
    customer = make_customer("买家")
    client = _client("add_order", "change_order", "view_order")
    created = client.post("/api/v1/orders/", _order(customer), format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["number"] == "E20260301001" and body["amount"] == "199.90" and body["person"]
    order = Order.objects.get(number="E20260301001")
    assert order.customer_id == customer.id
    assert order.person.links.filter(customer_id=customer.id).exists()
    updated = client.post("/api/v1/orders/", _order(customer, status="refunded"), format="json")
    assert updated.status_code == 200
    assert Order.objects.get(number="E20260301001").status == "refunded"
    assert Order.objects.count() == 1 and Person.objects.count() == 1
    listed = client.get("/api/v1/orders/", {"customer": customer.id})
    assert listed.status_code == 200 and [o["number"] for o in listed.json()["results"]] == ["E20260301001"]


def test_customer_by_channel_and_external_id(make_customer):
    customer = make_customer("买家")
    client = _client("add_order")
    data = _order(customer, channel="web", external_id=customer.external_id)
    del data["customer"]
    response = client.post("/api/v1/orders/", data, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["customer"] == customer.id
    data["external_id"] = "nobody"
    data["number"] = "X2"
    response = client.post("/api/v1/orders/", data, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["external_id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "-1"}, "amount"),
        ({"paid_at": None}, "paid_at"),
        ({"status": "lost"}, "status"),
        ({"items": "two shirts"}, "items"),
        ({"customer": 987654}, "customer"),
        ({"number": ""}, "number"),
    ],
)
def test_validation_errors(make_customer, change, field):
    customer = make_customer("买家")
    response = _client("add_order").post("/api/v1/orders/", _order(customer, **change), format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in error.get("fields", {}), error
    assert not Order.objects.exists()


def test_permissions(make_customer):
    customer = make_customer("买家")
    assert APIClient().post("/api/v1/orders/", _order(customer), format="json").status_code in (401, 403)
    assert _client("view_order").post("/api/v1/orders/", _order(customer), format="json").status_code == 403
    assert _client("add_order").get("/api/v1/orders/").status_code == 403
    assert _client("add_order").post("/api/v1/orders/", _order(customer), format="json").status_code == 201
    # updating a known number also needs the change permission
    again = _client("add_order").post("/api/v1/orders/", _order(customer, status="refunded"), format="json")
    assert again.status_code == 403


def test_number_of_another_customer_is_a_conflict(make_customer):
    first, second = make_customer("甲"), make_customer("乙")
    client = _client("add_order", "change_order")
    assert client.post("/api/v1/orders/", _order(first), format="json").status_code == 201
    response = client.post("/api/v1/orders/", _order(second), format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "order_customer_mismatch"


def test_csv_import_creates_and_updates(make_customer):
    first, second = make_customer("甲"), make_customer("乙")
    dataset = tablib.Dataset(
        headers=["number", "customer", "channel", "external_id", "amount", "paid_at", "items", "status"]
    )
    dataset.append(["C1", first.id, "", "", "88.00", "2026-02-01 10:00", '[{"sku": "A"}]', "paid"])
    dataset.append(["C2", "", "web", second.external_id, "120.50", "2026/02/03 09:15", "", "completed"])
    result = OrderResource().import_data(dataset, dry_run=False, raise_errors=True)
    assert not result.has_errors() and not result.has_validation_errors()
    assert Order.objects.get(number="C1").items == [{"sku": "A"}]
    c2 = Order.objects.get(number="C2")
    assert (c2.customer_id, str(c2.amount), c2.status) == (second.id, "120.50", "completed")
    assert c2.person.links.filter(customer_id=second.id).exists()
    # a paid order without a payment time is rejected; the rest of the file is not imported
    bad = tablib.Dataset(headers=["number", "customer", "amount", "paid_at", "status"])
    bad.append(["C3", first.id, "10", "", "paid"])
    result = OrderResource().import_data(bad, dry_run=False)
    assert result.has_validation_errors()
    assert not Order.objects.filter(number="C3").exists()
