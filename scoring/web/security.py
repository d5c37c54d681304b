"""Request guards of the workbench: CSRF on every POST, hostile input refused before any route, security headers.

:class:`GuardMiddleware` (inside the session middleware, so the session is decoded) does, for every HTTP request:

- a query string longer than ``max_query_bytes`` → 414; a query value with a NUL or another control character
  (databases refuse NUL in text; nothing legitimate sends them) → 400;
- a POST: the body is read (more than ``max_body_bytes`` → 413), its form is parsed, and the hidden field
  ``csrf_token`` must equal the session's token (:func:`csrf_token`; compared in constant time) → else 403;
  a form value with a control character → 400; the body is then handed on unchanged to the route;
- every response gets ``X-Frame-Options: DENY``, a Content-Security-Policy allowing only this origin (no inline
  script, no framing), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin`` and, for pages,
  ``Cache-Control: no-store`` (a shared intranet computer keeps no copy of an enterprise file).
"""

from __future__ import annotations

import hmac
import re
import secrets
from urllib.parse import parse_qsl

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSRF_FIELD", "GuardMiddleware", "SECURITY_HEADERS", "csrf_token"]

CSRF_FIELD = "csrf_token"
_SESSION_KEY = "csrf"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                                 b"form-action 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use: an anonymous session gets one for the login form)."""
    token = request.session.get(_SESSION_KEY)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session[_SESSION_KEY] = token
    return token


class GuardMiddleware:
    """See the module docstring. ``error`` renders an error page: ``error(request, status_code, message)``."""

    def __init__(self, app: ASGIApp, *, error, max_body_bytes: int = 1_000_000, max_query_bytes: int = 16_384):
        self.app, self.error = app, error
        self.max_body_bytes, self.max_query_bytes = max_body_bytes, max_query_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send, static=scope.get("path", "").startswith("/static/"))
        refusal = self._check_query(scope)
        if refusal is None and scope["method"] == "POST":
            refusal, receive = await self._check_post(scope, receive)
        if refusal is not None:
            status, message = refusal
            await self.error(Request(scope, receive), status, message)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check_query(self, scope: Scope) -> tuple[int, str] | None:
        raw = scope.get("query_string", b"")
        if len(raw) > self.max_query_bytes:
            return 414, f"查询字符串超过 {self.max_query_bytes:,} 字节 · the query string is longer than " \
                        f"{self.max_query_bytes:,} bytes"
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="replace")
        if any(_CONTROL.search(key) or _CONTROL.search(value) for key, value in pairs):
            return 400, "查询参数含控制字符 · a query parameter holds a control character"
        return None

    async def _check_post(self, scope: Scope, receive: Receive) -> tuple[tuple[int, str] | None, Receive]:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return (400, "连接已断开 · the client went away"), receive
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body_bytes:
                return (413, f"提交内容超过 {self.max_body_bytes:,} 字节 · the form is larger than "
                             f"{self.max_body_bytes:,} bytes"), _replay(b"", receive)
            chunks.append(body)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            form = await _parse_form(scope, body)
        except (HTTPException, ValueError, UnicodeDecodeError):
            return (400, "无法解析提交的表单 · the form could not be read"), _replay(body, receive)
        session = scope.get("session") or {}
        expected = session.get(_SESSION_KEY)
        given = form.get(CSRF_FIELD)
        if not (isinstance(expected, str) and isinstance(given, str)
                and hmac.compare_digest(expected.encode(), given.encode())):
            return (403, "表单已过期或来源不明，请刷新页面后重试 · the form's security token is missing or wrong "
                         "(reload the page and try again)"), _replay(body, receive)
        for key, value in form.multi_items():
            if _CONTROL.search(key) or (isinstance(value, str) and _CONTROL.search(value)):
                return (400, "表单字段含控制字符 · a form field holds a control character"), _replay(body, receive)
        await form.close()
        return None, _replay(body, receive)


async def _parse_form(scope: Scope, body: bytes) -> FormData:
    content_type = Request(scope).headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await Request(scope, _replay(body, _disconnected)).form(max_files=10, max_fields=1000)
    if content_type.startswith("application/x-www-form-urlencoded"):
        return FormData(parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="utf-8",
                                  errors="strict", max_num_fields=1000))
    return FormData()


def _replay(body: bytes, then: Receive) -> Receive:
    """A ``receive`` that hands ``body`` over once, then waits on ``then`` (the client's own: a disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await then()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}


def _with_headers(send: Send, *, static: bool) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in dict(SECURITY_HEADERS)]
            headers.extend(SECURITY_HEADERS)
            if not static:
                headers.append((b"cache-control", b"no-store"))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped
