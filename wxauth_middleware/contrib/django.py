"""Django: the middleware configured from settings, and the user in views and templates.

settings.py:

    WXAUTH = {
        "app_id": "wx1234567890abcdef",
        "app_secret": os.environ["WXAUTH_APP_SECRET"],
        "scope": "snsapi_userinfo",
        "public_url": "https://www.example.com",
        # No "secret_key": a dedicated one is derived from SECRET_KEY (see below).
    }
    MIDDLEWARE = [
        ...,
        # Optional: request.wechat_user, for views and templates.
        "wxauth_middleware.contrib.django.WeChatUserMiddleware",
    ]

wsgi.py and asgi.py (the WeChat login wraps the whole Django application):

    application = wrap_wsgi(get_wsgi_application())
    application = wrap_asgi(get_asgi_application())

views.py:

    from wxauth_middleware.contrib.django import get_wechat_user, login_required

    @login_required  # 401 JSON when nobody is logged in; sync and async views
    def me(request):
        user = get_wechat_user(request)  # WSGIRequest and ASGIRequest alike
        return JsonResponse({"openid": user.openid})

`WXAUTH` takes every option of `WeChatAuthWSGIMiddleware` / `WeChatAuthMiddleware`; keyword
arguments to `wrap_wsgi`/`wrap_asgi` override it (e.g. `transport`, `on_error`). Mistakes raise
Django's `ImproperlyConfigured` when wsgi.py/asgi.py loads (at server start), saying what to fix;
an invalid value's `ConfigurationError` (a `ValueError`) is chained as its `__cause__`.

Why a wrapper and not a Django MIDDLEWARE class doing the login: the login answers its own
callback and redirects before any URL routing, exactly as for every other framework, and the
ASGI one works under Django's ASGI handler, which sends no lifespan events.

`secret_key` is optional here, on purpose. Without it, the cookie-signing keys are derived from
`SECRET_KEY` with HMAC-SHA256 (`django.utils.crypto.salted_hmac`) and a salt of their own, one
per key of `SECRET_KEY_FALLBACKS` followed by `SECRET_KEY` (newest last). A Django project
already keeps a secret and rotates it with `SECRET_KEY_FALLBACKS`; a second secret to keep is
one more to leak or to leave at a default, and pasting `SECRET_KEY` itself in would share one key
between two signing schemes. The derived key is used for this purpose only, and rotating
`SECRET_KEY` the Django way keeps WeChat sessions alive until the old key leaves the fallbacks.
An explicit `secret_key` in `WXAUTH` is used as is (e.g. to share sessions with a non-Django
service).

Django's test `Client` does not go through wsgi.py: give it the user the middleware would have
set, `Client(wechat_user=WeChatUser(openid="o..."))` (or `wechat_user=None`); on a request made
with `AsyncRequestFactory`, set `request.scope["wechat_user"]`.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import JsonResponse
from django.utils.crypto import salted_hmac

from ..asgi import WeChatAuthMiddleware
from ..errors import ConfigurationError
from ..options import MiddlewareOptions
from ..user import User, attached_user, get_wechat_user
from ..wsgi import WeChatAuthWSGIMiddleware
from . import LOGIN_REQUIRED

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from starlette.types import ASGIApp

__all__ = [
    "WeChatUserMiddleware",
    "get_wechat_user",
    "login_required",
    "middleware_options",
    "wrap_asgi",
    "wrap_wsgi",
]

P = ParamSpec("P")
R = TypeVar("R")
RequestT = TypeVar("RequestT")
M = TypeVar("M", bound=MiddlewareOptions[Any])

# The salt that makes the derived key wxauth's own: no other use of SECRET_KEY shares it.
_KEY_SALT = "wxauth_middleware.contrib.django.secret_key"

# Every keyword option the middleware takes, read from its signature so the two never differ.
_OPTIONS: tuple[str, ...] = tuple(
    name
    for name, parameter in inspect.signature(MiddlewareOptions.__init__).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
)


# -- configuration ---------------------------------------------------------------------------


def middleware_options(**overrides: Any) -> dict[str, Any]:
    """`settings.WXAUTH` checked, with `overrides` on top and `secret_key` derived when absent.

    Raises `ImproperlyConfigured` for a missing or malformed `WXAUTH`, unknown option names and
    a missing `app_id` / `app_secret`. The values are checked by the middleware itself.
    """
    configured = getattr(settings, "WXAUTH", None)
    if configured is None:
        raise ImproperlyConfigured(
            "settings.WXAUTH is not set: add WXAUTH = {'app_id': 'wx...', 'app_secret': '...'} "
            "to your settings (any WeChatAuthMiddleware option; secret_key defaults to a key "
            "derived from SECRET_KEY)."
        )
    if not isinstance(configured, Mapping):
        raise ImproperlyConfigured(
            "settings.WXAUTH must be a dict of WeChatAuthMiddleware options, such as "
            f"{{'app_id': 'wx...', 'app_secret': '...'}}, not a {type(configured).__name__}."
        )
    options: dict[str, Any] = {**configured, **overrides}
    unknown = [name for name in options if name not in _OPTIONS]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(str(name), _OPTIONS, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ImproperlyConfigured(
            f"settings.WXAUTH has unknown option(s) {', '.join(hints)}. "
            f"The options are: {', '.join(_OPTIONS)}."
        )
    missing = [name for name in ("app_id", "app_secret") if not options.get(name)]
    if missing:
        raise ImproperlyConfigured(
            f"settings.WXAUTH needs {' and '.join(repr(name) for name in missing)}: the "
            "Official Account's AppID ('wx' + 16 characters) and AppSecret, from the WeChat "
            "console (设置与开发 -> 基本配置)."
        )
    if "secret_key" not in options:
        options["secret_key"] = _derived_secret_keys()
    return options


def _derived_secret_keys() -> list[str]:
    # Oldest first, newest (SECRET_KEY) last: the newest signs, all of them verify. Django
    # itself raises ImproperlyConfigured for an empty SECRET_KEY.
    secrets = [*getattr(settings, "SECRET_KEY_FALLBACKS", ()), settings.SECRET_KEY]
    return [
        str(salted_hmac(_KEY_SALT, "cookie-signing", secret=secret, algorithm="sha256").hexdigest())
        for secret in secrets
    ]


def wrap_wsgi(application: WSGIApplication, **overrides: Any) -> WeChatAuthWSGIMiddleware:
    """`application` (Django's `get_wsgi_application()`) behind `WeChatAuthWSGIMiddleware`,
    configured from `settings.WXAUTH` (keyword arguments override it)."""
    return _wrap(WeChatAuthWSGIMiddleware, application, overrides)


def wrap_asgi(application: ASGIApp, **overrides: Any) -> WeChatAuthMiddleware:
    """`application` (Django's `get_asgi_application()`) behind `WeChatAuthMiddleware`,
    configured from `settings.WXAUTH` (keyword arguments override it)."""
    return _wrap(WeChatAuthMiddleware, application, overrides)


def _wrap(middleware: type[M], application: Any, overrides: dict[str, Any]) -> M:
    options = middleware_options(**overrides)
    try:
        return middleware(application, **options)
    except ConfigurationError as exc:
        raise ImproperlyConfigured(f"settings.WXAUTH: {exc}") from exc


# -- the user in views -----------------------------------------------------------------------


def _user_of(request: Any) -> User | None:
    # ASGIRequest carries the ASGI scope; WSGIRequest's META is the WSGI environ.
    scope = getattr(request, "scope", None)
    carrier = scope if isinstance(scope, Mapping) else getattr(request, "META", None)
    if not isinstance(carrier, Mapping):
        raise TypeError(f"not a Django request: {type(request).__name__}")
    return attached_user(
        carrier,
        missing="No WeChat user on this request: the Django application is not wrapped in the "
        "WeChat middleware. In wsgi.py: application = wrap_wsgi(get_wsgi_application()); "
        "in asgi.py: application = wrap_asgi(get_asgi_application()) (from "
        "wxauth_middleware.contrib.django). In tests, give Django's test Client the user: "
        "Client(wechat_user=...).",
        where="request",
        writer="the WeChat middleware",
    )


def _login_required_response() -> Any:
    response = JsonResponse(LOGIN_REQUIRED, status=401)
    # Never cached: the same URL answers differently once the visitor has a session.
    response["Cache-Control"] = "no-store"
    return response


def login_required(
    view: Callable[Concatenate[RequestT, P], R],
) -> Callable[Concatenate[RequestT, P], R]:
    """Let only logged-in WeChat users into `view` (sync or async); others get a 401 JSON.

    Behind the middleware, a WeChat-browser page visit without a session never reaches a view
    (it is sent to WeChat first), so a view reached with no user was called by another browser,
    which cannot log in with WeChat: it gets `401 {"error": "login_required", ...}`, the code
    of the middleware's own 401. Raises RuntimeError when the application is not wrapped in
    the middleware. For class-based views: `method_decorator(login_required, name="dispatch")`.
    """
    if iscoroutinefunction(view):
        async_view = cast(Callable[..., Awaitable[Any]], view)

        @functools.wraps(view)
        async def check_then_await(request: RequestT, /, *args: P.args, **kwargs: P.kwargs) -> Any:
            if _user_of(request) is None:
                return _login_required_response()
            return await async_view(request, *args, **kwargs)

        return cast(Callable[Concatenate[RequestT, P], R], check_then_await)

    @functools.wraps(view)
    def check_then_call(request: RequestT, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if _user_of(request) is None:
            return cast(R, _login_required_response())
        return view(request, *args, **kwargs)

    return check_then_call


class WeChatUserMiddleware:
    """A Django MIDDLEWARE entry that sets `request.wechat_user` (a `WeChatUser` or None).

    For templates (`{{ request.wechat_user.nickname }}` with the `request` context processor)
    and views. It does not log anyone in: that is the wrapper's job (`wrap_wsgi`/`wrap_asgi`);
    without the wrapper it raises RuntimeError on every request, so the mistake shows at once.
    Works in sync and async middleware chains.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            # Tells Django's handler to await this middleware (as MiddlewareMixin does).
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._is_async:
            return self._acall(request)
        request.wechat_user = _user_of(request)
        return self.get_response(request)

    async def _acall(self, request: Any) -> Any:
        request.wechat_user = _user_of(request)
        return await self.get_response(request)
