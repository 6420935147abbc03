import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from tests.e2e.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "browser-test-pass-1"


def test_simulator_hello_gets_the_bot_answer(page, asgi_server, celery_worker, web_channel, greeting_rule):
    User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    login(page, asgi_server, "admin", PASSWORD)
    page.goto(f"{asgi_server}/simulator/")
    page.fill("#new-nickname", "王先生")
    page.click("#create-customer")
    expect(page.locator("#ws-status")).to_have_class("status online")
    page.fill("#message-input", "你好")
    page.press("#message-input", "Enter")
    expect(page.locator("#transcript li.in .bubble")).to_have_text(["你好"])
    bot = page.locator("#transcript li.out[data-sender=bot] .bubble")
    expect(bot).to_have_text(["您好，王先生！有什么可以帮您？"], timeout=15000)


def test_simulator_renders_customer_text_as_text(page, asgi_server, celery_worker, web_channel, greeting_rule):
    User.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    login(page, asgi_server, "admin", PASSWORD)
    page.goto(f"{asgi_server}/simulator/")
    page.click("#create-customer")
    expect(page.locator("#ws-status")).to_have_class("status online")
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.fill("#message-input", "<img src=x onerror=alert(1)><script>alert(2)</script>")
    page.press("#message-input", "Enter")
    expect(page.locator("#transcript li.in .bubble")).to_have_text(
        ["<img src=x onerror=alert(1)><script>alert(2)</script>"]
    )
    expect(page.locator("#transcript li.out")).to_have_count(1, timeout=15000)
    assert dialogs == []


def test_admin_login_page_is_in_chinese(page, asgi_server):
    page.goto(f"{asgi_server}/admin/login/")
    expect(page.locator("label[for=id_username]")).to_contain_text("用户名")
    expect(page.locator("input[type=submit]")).to_have_value("登录")
    expect(page).to_have_title("登录 | Kefu 管理后台")
