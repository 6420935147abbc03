"""A lean HTTP client for the send path: the part of ``requests.Session`` the adapters use, on urllib3 directly.

Every bot reply is one POST (to the bridge, or to the WeChat/WeCom API); measured on this machine, ``requests``
costs about 1 ms more CPU per call than the urllib3 pool underneath it. ``Session`` offers ``post`` and
``request`` with the keyword arguments the adapters pass (``params``, ``data``, ``headers``, ``timeout``) and a
response with ``status_code``, ``content``, ``headers``, ``text`` and ``json()``. Failures are raised as
``requests`` exceptions (``Timeout``, ``ConnectionError``), so the adapters' error handling is unchanged.

It does not retry (neither does ``requests`` by default) and follows no redirect (``requests`` would, turning a
POST into a GET on 301/302): a 3xx answer raises ``requests.ConnectionError`` naming its target, so a moved bridge
URL shows up as a send error instead of a reply counted as delivered. Proxies from the environment are not
supported: ``session_for_sending`` returns a plain ``requests.Session`` when any are set.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any
from urllib.parse import urlencode

import requests
import urllib3


class Response:
    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, content: bytes, headers: Any) -> None:
        self.status_code = status_code
        self.content = content
        self.headers = headers

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)  # json.JSONDecodeError is a ValueError, as requests' is


class Session:
    def __init__(self, *, pool_size: int = 10) -> None:
        self._pool = urllib3.PoolManager(num_pools=32, maxsize=pool_size, retries=False)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
        limit = urllib3.Timeout(connect=timeout, read=timeout) if timeout is not None else urllib3.Timeout()
        try:
            response = self._pool.request(method, url, body=data, headers=headers, timeout=limit, redirect=False)
        except urllib3.exceptions.NewConnectionError as exc:  # a TimeoutError subclass in urllib3 2, but refused
            raise requests.ConnectionError(str(exc)) from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise requests.Timeout(str(exc)) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise requests.ConnectionError(str(exc)) from exc
        if 300 <= response.status < 400:
            where = response.headers.get("Location", "")
            raise requests.ConnectionError(f"HTTP {response.status} redirect to {where!r} not followed")
        return Response(response.status, response.data, response.headers)

    def post(self, url: str, **kwargs: Any) -> Response:
        return self.request("POST", url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Response:
        return self.request("GET", url, **kwargs)


def session_for_sending() -> Session | requests.Session:
    """The lean session, or ``requests.Session`` where the environment configures an HTTP proxy."""
    if urllib.request.getproxies():
        return requests.Session()
    return Session()
