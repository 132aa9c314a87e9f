"""Helpers shared by the emulator's tests (tests/test_emulator*.py): an ASGI client, the
authorize link, the consent form, the callback and the token exchange."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET

BASE_URL = "http://127.0.0.1:8400"
CALLBACK = "http://localhost:8000/wxauth/callback"
# WeChat ends most messages with ", rid: ..." and some with " rid: ..." (no comma).
RID_RE = re.compile(r",? rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$")


class Clock:
    """A clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def client_for(app: Any, *, client: tuple[str, int] = ("127.0.0.1", 123)) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=client), base_url=BASE_URL
    )


def authorize_query(
    *,
    appid: str = DEFAULT_APP_ID,
    redirect_uri: str = CALLBACK,
    response_type: str = "code",
    scope: str = "snsapi_userinfo",
    state: str | None = "abc123",
    extra: str = "",
) -> str:
    query = (
        f"appid={appid}&redirect_uri={quote(redirect_uri, safe='')}"
        f"&response_type={response_type}&scope={scope}"
    )
    if state is not None:
        query += f"&state={state}"
    return query + extra


def authorize_path(query: str, prefix: str = "") -> str:
    return f"{prefix}/connect/oauth2/authorize?{query}"


class FormParser(HTMLParser):
    """The consent form's action, hidden fields and persona radios."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.hidden: dict[str, str] = {}
        self.radios: list[str] = []
        self.checked = ""
        self.button_ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a["action"]
        elif tag == "input" and a.get("type") == "hidden":
            self.hidden[a["name"]] = a["value"]
        elif tag == "input" and a.get("type") == "radio" and a.get("name") == "persona":
            self.radios.append(a["value"])
            if "checked" in a:
                self.checked = a["value"]
        elif tag == "button":
            self.button_ids.append(a["id"])


def parse_form(html_text: str) -> FormParser:
    parser = FormParser()
    parser.feed(html_text)
    return parser


def error_marker(html_text: str) -> str | None:
    match = re.search(r'<meta name="wechat-error" content="([^"]*)">', html_text)
    return match.group(1) if match else None


def callback_params(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(CALLBACK)
    return parse_qs(urlsplit(location).query, keep_blank_values=True)


def body_json(response: httpx.Response) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.content.decode("utf-8"), strict=False)
    return data


async def exchange(
    client: httpx.AsyncClient, code: str | None, /, **overrides: str
) -> dict[str, Any]:
    params = {
        "appid": DEFAULT_APP_ID,
        "secret": DEFAULT_APP_SECRET,
        "code": code or "",
        "grant_type": "authorization_code",
        **overrides,
    }
    response = await client.get("/sns/oauth2/access_token", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain"
    return body_json(response)


def assert_error(data: Mapping[str, Any], errcode: int) -> None:
    assert data["errcode"] == errcode, data
    assert RID_RE.search(data["errmsg"]), data
