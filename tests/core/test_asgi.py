"""The ASGI application (config.asgi) runs Django's whole HTTP path in one sync call (core.asgi)."""

import asyncio
import contextvars
import json
import threading

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from channels.testing import HttpCommunicator
from django.core import signals
from django.http import HttpResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from bots.channels.bridge import signed_headers
from bots.models import Channel, Message
from config.asgi import application, django_asgi_app
from core.asgi import SyncChainASGIHandler

EVENTS: list[tuple[str, str]] = []


@csrf_exempt
def _plain(request):
    EVENTS.append(("view", threading.current_thread().name))
    return HttpResponse(b"plain:" + request.body, content_type="text/plain")


def _streamed(request):
    def chunks():
        for i in range(3):
            EVENTS.append(("chunk", str(i)))
            yield f"part{i};".encode()

    return StreamingHttpResponse(chunks(), content_type="text/plain")


BARRIER = threading.Barrier(12, timeout=20)
MARK: contextvars.ContextVar[str] = contextvars.ContextVar("test_asgi_mark", default="unset")


def _marks(request):
    """Answers the mark it found, then sets its own: a context variable left over from an earlier request on the
    same worker thread would show up in a later answer."""
    found = MARK.get()
    MARK.set(request.GET["n"])
    return HttpResponse(f"{found}|{threading.current_thread().name}")


def _meet(request):
    """Returns only when 12 requests are inside views at the same time (else BrokenBarrierError: a 500)."""
    BARRIER.wait()
    return HttpResponse(threading.current_thread().name)


urlpatterns = [
    path("plain/", _plain),
    path("streamed/", _streamed),
    path("meet/", _meet),
    path("marks/", _marks),
]


def _request(method, path_, body=b"", headers=()):
    async def run():
        communicator = HttpCommunicator(application, method, path_, body=body, headers=list(headers))
        return await communicator.get_response(timeout=10)

    return async_to_sync(run)()


def _streamed_request(path_):
    """The raw ASGI messages of a GET (HttpCommunicator cannot read a body message without ``body``)."""

    async def run():
        scope = {"type": "http", "http_version": "1.1", "method": "GET", "path": path_, "query_string": b""}
        scope |= {"headers": [], "scheme": "http", "server": ("testserver", 80), "client": ("127.0.0.1", 1)}
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        messages = [await communicator.receive_output(10)]
        while messages[-1]["type"] != "http.response.body" or messages[-1].get("more_body"):
            messages.append(await communicator.receive_output(10))
        await communicator.wait(10)
        return messages

    return async_to_sync(run)()


@pytest.fixture
def signal_log():
    EVENTS.clear()

    def started(**kwargs):
        EVENTS.append(("started", threading.current_thread().name))

    def finished(**kwargs):
        EVENTS.append(("finished", threading.current_thread().name))

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    yield EVENTS
    signals.request_started.disconnect(started)
    signals.request_finished.disconnect(finished)


def test_the_middleware_chain_is_loaded_in_sync_mode():
    assert isinstance(django_asgi_app, SyncChainASGIHandler)
    assert not asyncio.iscoroutinefunction(django_asgi_app._middleware_chain)


def test_one_worker_thread_runs_the_signals_the_middleware_and_the_view(settings, signal_log):
    settings.ROOT_URLCONF = __name__
    response = _request("POST", "/plain/", body=b"hello", headers=[(b"content-type", b"text/plain")])
    assert response["status"] == 200
    assert response["body"] == b"plain:hello"
    headers = dict(response["headers"])
    assert headers[b"X-Content-Type-Options"] == b"nosniff"  # the security middleware ran
    assert [name for name, _ in signal_log] == ["started", "view", "finished"]
    threads = {thread for _, thread in signal_log}
    assert len(threads) == 1 and next(iter(threads)).startswith("kefu-http")


def test_more_requests_run_at_once_than_the_event_loops_default_pool(settings):
    """The loop's default executor has cores + 4 threads (6 here); requests that wait (an Official Account push
    waiting for its passive reply) must not hold up the rest: 12 views are inside at the same moment."""
    settings.ROOT_URLCONF = __name__
    BARRIER.reset()

    async def run():
        communicators = [HttpCommunicator(application, "GET", "/meet/") for _ in range(12)]
        return await asyncio.gather(*(c.get_response(timeout=30) for c in communicators))

    responses = async_to_sync(run)()
    assert [r["status"] for r in responses] == [200] * 12
    assert len({r["body"] for r in responses}) == 12  # twelve threads of the request pool


def test_context_variables_do_not_reach_the_next_request_on_a_thread(settings):
    """Each request runs in its own copy of the context: 40 requests one after the other (more than the pool's 32
    threads, so threads are reused) all start from the default value."""
    settings.ROOT_URLCONF = __name__

    async def run():
        answers = []
        for n in range(40):
            communicator = HttpCommunicator(application, "GET", "/marks/", body=b"")
            communicator.scope["query_string"] = f"n={n}".encode()
            answers.append((await communicator.get_response(timeout=10))["body"].decode())
        return answers

    answers = async_to_sync(run)()
    threads = [answer.split("|")[1] for answer in answers]
    assert len(set(threads)) < len(threads)  # some thread served more than one request
    assert [answer.split("|")[0] for answer in answers] == ["unset"] * 40


def test_a_streaming_response_is_closed_after_its_last_chunk(settings, signal_log):
    settings.ROOT_URLCONF = __name__
    messages = _streamed_request("/streamed/")
    assert messages[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in messages[1:]) == b"part0;part1;part2;"
    assert [name for name, _ in signal_log] == ["started", "chunk", "chunk", "chunk", "finished"]


def test_errors_still_get_their_pages(db, signal_log):
    response = _request("GET", "/no-such-page/")
    assert response["status"] == 404
    assert b"Traceback" not in response["body"]
    assert [name for name, _ in signal_log] == ["started", "finished"]


@pytest.mark.django_db(transaction=True)
def test_the_bridge_webhook_through_the_asgi_application(redis_clean):
    Channel.objects.create(
        kind=Channel.Kind.BRIDGE, slug="asgi", name="asgi", settings={}, secrets=json.dumps({"secret": "s3"})
    )
    body = json.dumps({"id": "asgi-1", "from": "wxid_asgi", "type": "text", "text": "你好", "ts": 0}).encode()
    headers = [(b"content-type", b"application/json")]
    refused = _request(
        "POST",
        "/bridge/asgi/",
        body=body,
        headers=headers
        + [
            (k.encode(), v.encode())
            for k, v in {
                "X-Kefu-Timestamp": signed_headers(body, "s3")["X-Kefu-Timestamp"],
                "X-Kefu-Signature": "0" * 64,
            }.items()
        ],
    )
    assert refused["status"] == 403
    assert not Message.objects.filter(external_id="asgi-1").exists()
    signed = [(k.encode(), v.encode()) for k, v in signed_headers(body, "s3").items()]
    accepted = _request("POST", "/bridge/asgi/", body=body, headers=headers + signed)
    assert accepted["status"] == 200, accepted["body"]
    assert Message.objects.get(external_id="asgi-1").content == "你好"
