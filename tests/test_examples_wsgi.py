"""The Flask and Django examples log in, as their docstrings say.

In-process: each example is loaded from its file after WECHAT_EMULATOR_URL is pointed at this
test's emulator (so dev_settings, loaded fresh, sends it there), and a phone logs in through it.
Over real sockets: the documented commands (`gunicorn --chdir examples ... flask_app:app`,
`python examples/flask_app.py`, `manage.py runserver`, uvicorn on the Django ASGI entry point)
run as subprocesses and are logged into with httpx, following every redirect.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from wsgiref.validate import validator

import django
import httpx
import pytest
from django.conf import settings
from django.test import override_settings

from wxauth_middleware import WeChatAuthMiddleware, WeChatAuthWSGIMiddleware
from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_PERSONAS

from .servers import REPO_ROOT, free_port, python_command, running_server
from .support import APP_ORIGIN, CHROME_UA, WECHAT_UA, Stack, ThreadedWSGITransport, login

pytestmark = pytest.mark.anyio

EXAMPLES = REPO_ROOT / "examples"
XIAOMING = DEFAULT_PERSONAS[0]
NICKNAME_HTML = f"<b id=nickname>{XIAOMING.nickname}</b>"


def _is_example_module(name: str) -> bool:
    return name in ("dev_settings", "flask_app", "django_app") or name.startswith("django_app.")


@pytest.fixture
def wechat(wechat_server: tuple[Any, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The emulator (auto-approve), with the examples' modules importable and not yet loaded,
    and WECHAT_EMULATOR_URL pointing at it; everything restored afterwards."""
    stack = Stack("wsgi", *wechat_server)
    stack.emulator(auto_approve=True, domains=("localhost", "127.0.0.1"))
    monkeypatch.setenv("WECHAT_EMULATOR_URL", stack.wechat_url)
    for name in ("EXAMPLES_REAL_WECHAT", "WXAUTH_APP_ID", "WXAUTH_APP_SECRET", "WXAUTH_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    saved = {name: module for name, module in sys.modules.items() if _is_example_module(name)}
    for name in saved:
        del sys.modules[name]
    try:
        yield stack
    finally:
        for name in [name for name in sys.modules if _is_example_module(name)]:
            del sys.modules[name]
        sys.modules.update(saved)


def load(name: str, path: Path) -> ModuleType:
    """Import the module at `path` as `name`, from its file."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def phone(
    transport: httpx.AsyncBaseTransport, *, user_agent: str = WECHAT_UA
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        mounts={APP_ORIGIN: transport},
        base_url=APP_ORIGIN,
        headers={"user-agent": user_agent, "accept": "text/html,*/*;q=0.8"},
    ) as client:
        yield client


def assert_me(response: httpx.Response) -> None:
    assert response.status_code == 200
    assert response.json() == {
        "openid": XIAOMING.openid_for(DEFAULT_APP_ID),
        "unionid": XIAOMING.unionid,
        "nickname": XIAOMING.nickname,
        "scope": "snsapi_userinfo",
    }


# -- in-process ------------------------------------------------------------------------------


async def test_the_flask_example_logs_in(wechat: Stack) -> None:
    dev_settings = load("dev_settings", EXAMPLES / "dev_settings.py")
    example = load("flask_app", EXAMPLES / "flask_app.py")
    middleware = example.app.wsgi_app
    assert isinstance(middleware, WeChatAuthWSGIMiddleware)
    assert wechat.wechat_url == dev_settings.EMULATOR_URL
    assert middleware.config.api_base_url == wechat.wechat_url
    try:
        async with phone(ThreadedWSGITransport(validator(example.app))) as client:
            page = await login(client, "/")
            me = await client.get("/api/me", headers={"accept": "application/json"})
        async with phone(
            ThreadedWSGITransport(validator(example.app)), user_agent=CHROME_UA
        ) as desktop:
            anonymous_page = await desktop.get("/")
            anonymous_me = await desktop.get("/api/me")
    finally:
        middleware.close()
    assert page.status_code == 200
    assert page.url.path == "/"
    assert NICKNAME_HTML in page.text
    assert_me(me)
    assert "stranger" in anonymous_page.text
    assert anonymous_me.status_code == 401
    assert anonymous_me.json()["error"] == "login_required"


@pytest.fixture
def django_example(wechat: Stack) -> Iterator[Stack]:
    """The example project's settings in force (over bare process-wide settings)."""
    if not settings.configured:
        # Not empty: leaving an override reads every overridden setting back.
        settings.configure(SECRET_KEY="bare-settings-key-never-used-for-signing")
    django.setup()
    load("dev_settings", EXAMPLES / "dev_settings.py")
    example_settings = importlib.import_module("django_app.settings")
    values = {name: getattr(example_settings, name) for name in dir(example_settings)}
    values = {name: value for name, value in values.items() if name.isupper()}
    # No database: DATABASES stays Django's default, empty (overriding it is not supported).
    assert values.pop("DATABASES") == {}
    with override_settings(**values):
        yield wechat


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
async def test_the_django_example_logs_in(django_example: Stack, kind: str) -> None:
    entry = importlib.import_module(f"django_app.{kind}")
    application = entry.application
    transport: httpx.AsyncBaseTransport
    if kind == "wsgi":
        assert isinstance(application, WeChatAuthWSGIMiddleware)
        transport = ThreadedWSGITransport(validator(application))
    else:
        assert isinstance(application, WeChatAuthMiddleware)
        transport = httpx.ASGITransport(app=application)
    assert application.config.api_base_url == django_example.wechat_url
    # WXAUTH leaves secret_key out: the key is derived from SECRET_KEY.
    assert "secret_key" not in settings.WXAUTH
    assert len(application.config.secret_keys[0]) == 64
    try:
        async with phone(transport) as client:
            page = await login(client, "/")
            me = await client.get("/api/me", headers={"accept": "application/json"})
        async with phone(transport, user_agent=CHROME_UA) as desktop:
            anonymous_page = await desktop.get("/")
            anonymous_me = await desktop.get("/api/me")
    finally:
        if isinstance(application, WeChatAuthWSGIMiddleware):
            application.close()
        else:
            await application.aclose()
    assert page.status_code == 200
    assert page.url.path == "/"
    assert NICKNAME_HTML in page.text
    assert_me(me)
    assert "stranger" in anonymous_page.text
    assert anonymous_me.status_code == 401
    assert anonymous_me.json()["error"] == "login_required"


# -- the documented commands, over real sockets ------------------------------------------------


COMMANDS = {
    # The command the browser test starts, exactly (with a free port).
    "flask-gunicorn": [
        "-m",
        "gunicorn",
        "--chdir",
        "examples",
        "-b",
        "127.0.0.1:{port}",
        "flask_app:app",
    ],
    "flask-dev-server": ["examples/flask_app.py", "--port", "{port}"],
    # --noreload: the autoreloader would run the server in a child process.
    "django-runserver": [
        "examples/django_app/manage.py",
        "runserver",
        "--noreload",
        "127.0.0.1:{port}",
    ],
    "django-asgi-uvicorn": [
        "-m",
        "uvicorn",
        "--app-dir",
        "examples",
        "--port",
        "{port}",
        "django_app.asgi:application",
    ],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_the_documented_command_serves_the_login(wechat: Stack, command: str) -> None:
    port = free_port()
    argv = python_command(*(arg.format(port=port) for arg in COMMANDS[command]))
    with (
        running_server(
            command,
            argv,
            port=port,
            env={"WECHAT_EMULATOR_URL": wechat.wechat_url},
            unset=("DJANGO_SETTINGS_MODULE",),
            ready_status=None,
            ready_timeout=30,
        ) as server,
        httpx.Client(
            headers={"user-agent": WECHAT_UA, "accept": "text/html,*/*;q=0.8"},
            follow_redirects=True,
            timeout=10,
        ) as client,
    ):
        base = server.url
        page = client.get(f"{base}/")
        me = client.get(f"{base}/api/me", headers={"accept": "application/json"})
    hops = [str(response.url) for response in page.history]
    assert hops[0] == f"{base}/", server.output()
    assert any(hop.startswith(f"{wechat.authorize_url}?appid=") for hop in hops), hops
    assert any(hop.startswith(f"{base}/wxauth/callback?code=") for hop in hops), hops
    assert page.status_code == 200, page.text
    # Back on the page; browsers keep WeChat's "#wechat_redirect" fragment across redirects.
    assert str(page.url.copy_with(fragment=None)) == f"{base}/"
    assert NICKNAME_HTML in page.text
    assert_me(me)
    assert json.loads(me.text)["nickname"] == XIAOMING.nickname
