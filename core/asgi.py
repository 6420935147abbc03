"""Django's HTTP handling under ASGI with one thread hop per request.

Every Kefu view is synchronous. Django's own ``ASGIHandler`` builds an async middleware chain, and each
``MiddlewareMixin`` middleware (sessions, CSRF, auth, messages…) then runs its ``process_request`` /
``process_response`` through ``sync_to_async``; one sync-only middleware in the chain switches back with
``async_to_sync``; the view runs in a thread again; the ``request_started`` and ``request_finished`` signals
hop once more each. Profiled under the load test, those switches (thread hand-offs, context copies, futures)
cost more CPU than the webhook's own work.

``SyncChainASGIHandler`` reads the body on the event loop, runs everything else — ``request_started``, the
request object, the whole middleware chain loaded in sync mode, the view, and ``response.close()`` (which sends
``request_finished``: the database connection goes back to the pool) — in one call on a worker thread, then
writes the response on the event loop. Streaming responses are closed after their last chunk, as Django does.

The worker-thread call is a plain ``loop.run_in_executor`` in a copy of the request's context, not asgiref's
``sync_to_async``: that one copies the context variables back onto the event loop after every call (comparing each
variable's value), ≈ 10 % of the web server's CPU under the load test, and nothing on the loop reads them after
the response is built. The copy keeps what the loop set (the script prefix) and keeps one request's context
variables (language, log fields, asgiref locals) from reaching the next request on the same thread.

Behaviour that changes: a client that disconnects mid-request no longer cancels the request (a sync view cannot
be cancelled anyway; Django only cancels async views).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse
from django.urls import set_script_prefix


@functools.cache
def _request_executor() -> ThreadPoolExecutor:
    """The threads that run requests in this process: ``KEFU_WEB_THREADS`` (default 32). Only the event loop's
    thread calls it (``handle``), so the cache needs no lock."""
    return ThreadPoolExecutor(max_workers=settings.KEFU_WEB_THREADS, thread_name_prefix="kefu-http")


class SyncChainASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        # Our own pool, reused across requests (Django's ThreadSensitiveContext starts a thread per request); the
        # whole request runs in that one call, so nothing else needs its thread-local state (the database
        # connection is returned by request_finished inside it). The pool is larger than the loop's default
        # (cores + 4): an Official Account push may wait seconds for its passive reply.
        context = contextvars.copy_context()
        response = await asyncio.get_running_loop().run_in_executor(
            _request_executor(), context.run, self._respond, scope, body_file
        )
        try:
            await self.send_response(response, send)
        finally:
            if response.streaming:
                await sync_to_async(response.close, thread_sensitive=False)()
            body_file.close()

    def _respond(self, scope, body_file):
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            error_response.close()
            return error_response
        response = self.get_response(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        if not response.streaming:
            response.close()  # request_finished now: the connection goes back before the bytes go out
        return response


def get_asgi_application() -> SyncChainASGIHandler:
    """``django.core.asgi.get_asgi_application`` with the one-hop handler."""
    import django

    django.setup(set_prefix=False)
    return SyncChainASGIHandler()
