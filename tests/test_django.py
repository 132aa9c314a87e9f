"""Django behind the middleware, for real: `wrap_wsgi(get_wsgi_application())` and
`wrap_asgi(get_asgi_application())`, settings-driven configuration, and the view helpers.

Django's settings are process-wide: they are configured once (bare) for the module, and each
test overrides what it needs with `override_settings`, undone after it. This module is its own
ROOT_URLCONF. Django's ASGI handler sends no lifespan events, and neither does httpx's
ASGITransport: the ASGI login below runs without any.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from wsgiref.validate import validator

import django
import httpx
import pytest
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, JsonResponse
from django.test import (
    AsyncRequestFactory,
    Client,
    RequestFactory,
    override_settings,
)
from django.urls import path

from wxauth_middleware import (
    ConfigurationError,
    WeChatAuthMiddleware,
    WeChatAuthWSGIMiddleware,
    WeChatUser,
)
from wxauth_middleware.contrib.django import (
    WeChatUserMiddleware,
    get_wechat_user,
    login_required,
    middleware_options,
    wrap_asgi,
    wrap_wsgi,
)
from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_APP_SECRET, DEFAULT_PERSONAS

from .support import (
    APP_ORIGIN,
    CHROME_UA,
    WECHAT_UA,
    Stack,
    ThreadedWSGITransport,
    inner_wsgi_app,
    login,
    user_json,
)

pytestmark = pytest.mark.anyio

XIAOMING = DEFAULT_PERSONAS[0]
DJANGO_SECRET_KEY = "django-test-secret-key-0123456789abcdef"
LOGIN_REQUIRED = {
    "error": "login_required",
    "message": "Log in with WeChat: open this page inside the WeChat app.",
}


# -- the site ------------------------------------------------------------------------------


def page(request: HttpRequest) -> Any:
    return JsonResponse(
        {
            "user": user_json(get_wechat_user(request)),
            "attribute": user_json(request.wechat_user),  # set by WeChatUserMiddleware
            "request": type(request).__name__,
            "path": request.get_full_path(),
        }
    )


@login_required
def me(request: HttpRequest) -> Any:
    user = get_wechat_user(request)
    assert user is not None
    return JsonResponse({"openid": user.openid, "view": "sync"})


@login_required
async def async_me(request: HttpRequest, item: int) -> Any:
    user = get_wechat_user(request)
    assert user is not None
    return JsonResponse({"openid": user.openid, "view": "async", "item": item})


urlpatterns = [
    path("page", page),
    path("api/me", me),
    path("api/items/<int:item>", async_me),
]


# -- settings ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def django_ready() -> None:
    """Django configured for the process (bare: every test overrides what it uses)."""
    if not settings.configured:
        # Not empty: leaving an override reads every overridden setting back, and Django
        # refuses to read an empty SECRET_KEY.
        settings.configure(SECRET_KEY="bare-settings-key-never-used-for-signing")
    django.setup()


def site_settings(stack: Stack, **wxauth: Any) -> dict[str, Any]:
    wxauth.setdefault("app_id", DEFAULT_APP_ID)
    wxauth.setdefault("app_secret", DEFAULT_APP_SECRET)
    wxauth.setdefault("scope", "snsapi_userinfo")
    wxauth.setdefault("authorize_url", stack.authorize_url)
    wxauth.setdefault("api_base_url", stack.wechat_url)
    return {
        "DEBUG": False,
        "SECRET_KEY": DJANGO_SECRET_KEY,
        "SECRET_KEY_FALLBACKS": [],
        "ALLOWED_HOSTS": ["localhost", "testserver"],
        "ROOT_URLCONF": __name__,
        "MIDDLEWARE": ["wxauth_middleware.contrib.django.WeChatUserMiddleware"],
        "WXAUTH": wxauth,
    }


@pytest.fixture
def wechat(wechat_server: tuple[Any, str], django_ready: None) -> Iterator[Stack]:
    """The emulator (auto-approve) and Django's settings for this module's site."""
    stack = Stack("django", *wechat_server)
    stack.emulator(auto_approve=True)
    with override_settings(**site_settings(stack)):
        yield stack


Wrapped = WeChatAuthWSGIMiddleware | WeChatAuthMiddleware


@asynccontextmanager
async def django_site(
    kind: str, *, user_agent: str = WECHAT_UA, cookies: httpx.Cookies | None = None
) -> AsyncIterator[tuple[Wrapped, httpx.AsyncClient]]:
    """Django wrapped as wsgi.py / asgi.py would wrap it, and a phone to browse it."""
    middleware: Wrapped
    transport: httpx.AsyncBaseTransport
    if kind == "wsgi":
        middleware = wrap_wsgi(get_wsgi_application())
        transport = ThreadedWSGITransport(validator(middleware))
    else:
        middleware = wrap_asgi(get_asgi_application())
        transport = httpx.ASGITransport(app=middleware)
    try:
        async with httpx.AsyncClient(
            mounts={APP_ORIGIN: transport},
            base_url=APP_ORIGIN,
            headers={"user-agent": user_agent, "accept": "text/html,*/*;q=0.8"},
            cookies=cookies,
        ) as client:
            yield middleware, client
    finally:
        if isinstance(middleware, WeChatAuthWSGIMiddleware):
            middleware.close()
        else:
            await middleware.aclose()


# -- the login, through WSGI and through ASGI ----------------------------------------------


@pytest.mark.parametrize(
    ("kind", "request_class"), [("wsgi", "WSGIRequest"), ("asgi", "ASGIRequest")]
)
async def test_login_through_django(wechat: Stack, kind: str, request_class: str) -> None:
    async with django_site(kind) as (middleware, client):
        response = await login(client, "/page?x=1")
    assert isinstance(
        middleware, WeChatAuthWSGIMiddleware if kind == "wsgi" else WeChatAuthMiddleware
    )
    assert response.status_code == 200
    body = response.json()
    assert body["request"] == request_class
    assert body["path"] == "/page?x=1"
    assert body["user"]["nickname"] == XIAOMING.nickname
    assert body["user"]["openid"] == XIAOMING.openid_for(DEFAULT_APP_ID)
    assert body["attribute"] == body["user"]


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
async def test_login_required_in_sync_and_async_views(wechat: Stack, kind: str) -> None:
    async with django_site(kind, user_agent=CHROME_UA) as (_, desktop):
        anonymous = [
            await desktop.get(url, headers={"accept": "application/json"})
            for url in ("/api/me", "/api/items/3")
        ]
        public = await desktop.get("/page")
    async with django_site(kind) as (_, client):
        await login(client, "/page")
        sync_view = await client.get("/api/me", headers={"accept": "application/json"})
        async_view = await client.get("/api/items/3", headers={"accept": "application/json"})
    for refused in anonymous:
        assert refused.status_code == 401
        assert refused.json() == LOGIN_REQUIRED
        assert refused.headers["cache-control"] == "no-store"
    assert (public.status_code, public.json()["user"]) == (200, None)
    openid = XIAOMING.openid_for(DEFAULT_APP_ID)
    assert sync_view.json() == {"openid": openid, "view": "sync"}
    assert async_view.json() == {"openid": openid, "view": "async", "item": 3}


def test_login_required_keeps_the_views_signature() -> None:
    assert list(inspect.signature(async_me).parameters) == ["request", "item"]
    assert inspect.iscoroutinefunction(async_me)
    assert not inspect.iscoroutinefunction(me)
    assert (me.__name__, async_me.__name__) == ("me", "async_me")


# -- without the wrapper ---------------------------------------------------------------------


def test_without_the_wrapper_the_views_and_the_middleware_say_so(wechat: Stack) -> None:
    message = r"not wrapped in the WeChat middleware.*wrap_wsgi\(get_wsgi_application\(\)\)"
    with pytest.raises(RuntimeError, match=message):
        me(RequestFactory().get("/api/me"))
    with pytest.raises(RuntimeError, match=message):
        Client().get("/page")  # WeChatUserMiddleware is in MIDDLEWARE
    with pytest.raises(RuntimeError, match="holds a str, not a WeChatUser"):
        me(RequestFactory(wechat_user="o-forged").get("/api/me"))


async def test_without_the_wrapper_async_views_say_so(wechat: Stack) -> None:
    with pytest.raises(RuntimeError, match="not wrapped in the WeChat middleware"):
        await async_me(AsyncRequestFactory().get("/api/items/1"), item=1)


def test_the_test_client_can_stand_in_for_the_middleware(wechat: Stack) -> None:
    # Django's test Client skips wsgi.py: its extra environ keys stand in for the middleware.
    user = WeChatUser(openid="o-test-user", nickname="测试")
    mine = Client(wechat_user=user).get("/api/me")
    assert mine.json() == {"openid": "o-test-user", "view": "sync"}
    assert Client(wechat_user=user).get("/api/items/5").json()["item"] == 5  # an async view
    anonymous = Client(wechat_user=None).get("/api/me")
    assert (anonymous.status_code, anonymous.json()) == (401, LOGIN_REQUIRED)


async def test_an_asgi_request_made_by_hand_takes_the_user_in_its_scope(wechat: Stack) -> None:
    user = WeChatUser(openid="o-test-user")
    request = AsyncRequestFactory().get("/api/items/6")
    request.scope["wechat_user"] = user
    response = await async_me(request, item=6)
    assert response.status_code == 200
    assert get_wechat_user(request) is user


def test_middleware_class_is_sync_and_async_capable() -> None:
    assert (WeChatUserMiddleware.sync_capable, WeChatUserMiddleware.async_capable) == (True, True)


# -- settings ----------------------------------------------------------------------------------

WRAPPERS = [
    pytest.param(lambda: wrap_wsgi(inner_wsgi_app), id="wsgi"),
    pytest.param(lambda: wrap_asgi(get_asgi_application()), id="asgi"),
]


@pytest.mark.parametrize("wrap", WRAPPERS)
@pytest.mark.parametrize(
    ("wxauth", "message"),
    [
        pytest.param("wx8e6a2d5c0b1f4a37", r"settings\.WXAUTH must be a dict", id="not-a-dict"),
        pytest.param(
            {"appid": DEFAULT_APP_ID, "app_secret": DEFAULT_APP_SECRET},
            r"unknown option\(s\) 'appid' \(did you mean 'app_id'\?\)\. The options are: app_id,",
            id="unknown-option",
        ),
        pytest.param(
            {"app_secret": DEFAULT_APP_SECRET},
            r"settings\.WXAUTH needs 'app_id': the Official Account's AppID",
            id="no-app-id",
        ),
        pytest.param(
            {"app_id": DEFAULT_APP_ID, "app_secret": ""},
            r"settings\.WXAUTH needs 'app_secret'",
            id="empty-app-secret",
        ),
        pytest.param(
            {"app_id": DEFAULT_APP_ID, "app_secret": DEFAULT_APP_SECRET, "scope": "snsapi_login"},
            r"^settings\.WXAUTH: scope must be 'snsapi_base' or 'snsapi_userinfo'",
            id="bad-value",
        ),
    ],
)
def test_bad_wxauth_settings_are_improperly_configured(
    django_ready: None, wrap: Any, wxauth: Any, message: str
) -> None:
    with override_settings(WXAUTH=wxauth), pytest.raises(ImproperlyConfigured, match=message):
        wrap()


@pytest.mark.parametrize("wrap", WRAPPERS)
def test_missing_wxauth_setting_is_improperly_configured(django_ready: None, wrap: Any) -> None:
    with override_settings():
        del settings.WXAUTH
        with pytest.raises(ImproperlyConfigured, match=r"settings\.WXAUTH is not set: add WXAUTH"):
            wrap()


def test_an_invalid_value_keeps_the_middlewares_error_as_cause(django_ready: None) -> None:
    wxauth = {"app_id": DEFAULT_APP_ID, "app_secret": DEFAULT_APP_SECRET, "max_age": -1}
    with override_settings(WXAUTH=wxauth), pytest.raises(ImproperlyConfigured) as raised:
        wrap_wsgi(inner_wsgi_app)
    assert isinstance(raised.value.__cause__, ConfigurationError)
    assert "max_age must be a positive number" in str(raised.value)


def test_an_empty_secret_key_is_refused_by_django_itself(django_ready: None) -> None:
    wxauth = {"app_id": DEFAULT_APP_ID, "app_secret": DEFAULT_APP_SECRET}
    with (
        override_settings(WXAUTH=wxauth, SECRET_KEY=""),
        pytest.raises(ImproperlyConfigured, match="SECRET_KEY setting must not be empty"),
    ):
        wrap_wsgi(inner_wsgi_app)


def test_keyword_arguments_override_the_settings(django_ready: None) -> None:
    wxauth = {"app_id": DEFAULT_APP_ID, "app_secret": DEFAULT_APP_SECRET, "scope": "snsapi_base"}
    with override_settings(WXAUTH=wxauth):
        middleware = wrap_wsgi(inner_wsgi_app, scope="snsapi_userinfo", max_age=60)
        with pytest.raises(ImproperlyConfigured, match="unknown option"):
            wrap_wsgi(inner_wsgi_app, scopes="snsapi_userinfo")
    assert (middleware.config.scope, middleware.config.max_age) == ("snsapi_userinfo", 60)
    assert middleware.app is inner_wsgi_app


def test_the_signing_key_is_derived_from_secret_key_unless_given(django_ready: None) -> None:
    wxauth = {"app_id": DEFAULT_APP_ID, "app_secret": DEFAULT_APP_SECRET}
    with override_settings(WXAUTH=wxauth, SECRET_KEY=DJANGO_SECRET_KEY, SECRET_KEY_FALLBACKS=[]):
        derived = middleware_options()["secret_key"]
        again = wrap_wsgi(inner_wsgi_app).config.secret_keys
        with override_settings(SECRET_KEY="another-django-secret-key-0123456789"):
            other = middleware_options()["secret_key"]
        with override_settings(SECRET_KEY_FALLBACKS=["old-django-secret-key-0123456789"]):
            rotated = middleware_options()["secret_key"]
    with override_settings(WXAUTH={**wxauth, "secret_key": "explicit-signing-key-0123456789"}):
        explicit = wrap_wsgi(inner_wsgi_app).config.secret_keys
    assert len(derived) == 1
    assert len(derived[0]) == 64  # hex HMAC-SHA256
    assert DJANGO_SECRET_KEY not in derived[0]
    assert again == (derived[0].encode(),)  # stable: sessions survive restarts
    assert other != derived
    assert len(rotated) == 2
    assert rotated[-1] == derived[0]  # the newest (SECRET_KEY) last: it signs
    assert explicit == (b"explicit-signing-key-0123456789",)


async def test_rotating_secret_key_the_django_way_keeps_sessions(wechat: Stack) -> None:
    async with django_site("wsgi") as (_, client):
        await login(client, "/page")
        cookies = client.cookies
    new_key = "rotated-django-secret-key-0123456789"
    with override_settings(SECRET_KEY=new_key, SECRET_KEY_FALLBACKS=[DJANGO_SECRET_KEY]):
        async with django_site("wsgi", user_agent=CHROME_UA, cookies=cookies) as (_, desktop):
            kept = await desktop.get("/page")
    with override_settings(SECRET_KEY=new_key, SECRET_KEY_FALLBACKS=[]):
        async with django_site("wsgi", user_agent=CHROME_UA, cookies=cookies) as (_, desktop):
            dropped = await desktop.get("/page")
    assert kept.json()["user"]["openid"] == XIAOMING.openid_for(DEFAULT_APP_ID)
    assert dropped.json()["user"] is None
