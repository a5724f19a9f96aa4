"""The optional access token: with one set, every page and API route needs it.

A browser opens ``/?token=T`` once; the console sets a cookie and drops the token from the
address. Scripts send ``Authorization: Bearer T``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "boxtune_ui_token"


class TokenGate:
    def __init__(self, app: ASGIApp, token: str | None):
        self.app = app
        self.token = token
        # The cookie holds a digest: any token text is then a valid cookie value.
        self.cookie_value = hashlib.sha256((token or "").encode()).hexdigest()

    def _matches(self, candidate: str | None) -> bool:
        return candidate is not None and hmac.compare_digest(
            candidate.encode(), (self.token or "").encode()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.token:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        bearer = headers.get("authorization", "")
        cookies = SimpleCookie(headers.get("cookie", ""))
        if self._matches(query.get("token")):
            await self._set_cookie_and_redirect(scope, query, send)
        elif self._matches(
            bearer[len("Bearer ") :].strip() if bearer.startswith("Bearer ") else None
        ) or (COOKIE in cookies and hmac.compare_digest(cookies[COOKIE].value, self.cookie_value)):
            await self.app(scope, receive, send)
        else:
            await self._refuse(scope, send)

    async def _set_cookie_and_redirect(self, scope: Scope, query: dict, send: Send) -> None:
        query.pop("token")
        location = scope["path"] + (f"?{urlencode(query)}" if query else "")
        cookie = f"{COOKIE}={self.cookie_value}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1")),
                    (b"set-cookie", cookie.encode("latin-1")),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = {
            "error": "this console needs its access token",
            "where": scope["path"],
            "hint": "open the address `boxtune ui` printed (it ends in ?token=...), or send "
            "'Authorization: Bearer TOKEN'",
        }
        if scope["path"].startswith("/api/"):
            payload, kind = json.dumps(body).encode(), b"application/json"
        else:
            payload = (
                "<!doctype html><title>boxtune console: token needed</title>"
                f"<h1>Token needed</h1><p>{body['error']}.</p><p>{body['hint']}</p>"
            ).encode()
            kind = b"text/html; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", kind),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
