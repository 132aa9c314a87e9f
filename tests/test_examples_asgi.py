"""The FastAPI and Starlette examples, as a user runs them: imported (`fastapi_app:app`) and as
their documented command (`python examples/fastapi_app.py --port N`), logging in against the
emulator server."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import httpx
import pytest

from wxauth_middleware.emulator import Persona

from .servers import REPO_ROOT, free_port, python_command, running_server
from .support import APP_ORIGIN, CHROME_UA, WECHAT_UA, Stack, lifespan, login

EXAMPLES = REPO_ROOT / "examples"
EXAMPLE_NAMES = ["fastapi_app", "starlette_app"]
PAGE = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
JSON = {"accept": "application/json"}
NICKNAME_HTML = "你好, <b id=nickname>小明🐼</b>"

# The environment dev_settings.py reads; the tests set the emulator address and nothing else.
SETTINGS_ENV = (
    "EXAMPLES_REAL_WECHAT",
    "WXAUTH_APP_ID",
    "WXAUTH_APP_SECRET",
    "WXAUTH_SECRET_KEY",
    "WXAUTH_PUBLIC_URL",
)


def load_example(name: str, wechat_url: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import examples/<name>.py as uvicorn would, with dev_settings pointed at `wechat_url`."""
    for variable in SETTINGS_ENV:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("WECHAT_EMULATOR_URL", wechat_url)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    # dev_settings reads the environment when imported: a fresh import sees the variable above.
    monkeypatch.delitem(sys.modules, "dev_settings", raising=False)
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    emulator_url = sys.modules["dev_settings"].EMULATOR_URL
    assert emulator_url == wechat_url, "dev_settings did not see WECHAT_EMULATOR_URL"
    return module


@pytest.mark.anyio
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
async def test_example_app_logs_in_and_greets_the_user(
    name: str, asgi_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = asgi_stack.emulator()
    app = load_example(name, asgi_stack.wechat_url, monkeypatch).app
    transport = httpx.ASGITransport(app=app)
    async with lifespan(app):
        async with httpx.AsyncClient(
            mounts={APP_ORIGIN: transport}, base_url=APP_ORIGIN, headers={"user-agent": WECHAT_UA}
        ) as phone:
            page = await login(phone, "/", persona="xiaoming")  # through the consent page
            me = await phone.get("/api/me", headers=JSON)
        async with httpx.AsyncClient(
            mounts={APP_ORIGIN: transport}, base_url=APP_ORIGIN, headers={"user-agent": CHROME_UA}
        ) as desktop:
            anonymous = await desktop.get("/", headers=PAGE)
            refused = await desktop.get("/api/me", headers=JSON)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert NICKNAME_HTML in page.text
    assert me.status_code == 200
    assert me.json()["nickname"] == "小明🐼"
    assert me.json()["openid"] == emulator.personas[0].openid_for(emulator.app_id)
    assert anonymous.status_code == 200
    assert "stranger" in anonymous.text
    # FastAPI's dependency answers 401; Starlette's @requires("authenticated"), 403.
    assert refused.status_code == {"fastapi_app": 401, "starlette_app": 403}[name]


@pytest.mark.anyio
@pytest.mark.parametrize("name", EXAMPLE_NAMES)
async def test_example_escapes_the_nickname(
    name: str, asgi_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nicknames are whatever the user typed: on the page they are text, never markup.
    hostile = Persona(key="hostile", nickname='<script>alert("小明")</script> & co')
    asgi_stack.emulator(auto_approve=True, personas=(hostile,))
    app = load_example(name, asgi_stack.wechat_url, monkeypatch).app
    async with (
        lifespan(app),
        httpx.AsyncClient(
            mounts={APP_ORIGIN: httpx.ASGITransport(app=app)},
            base_url=APP_ORIGIN,
            headers={"user-agent": WECHAT_UA, **PAGE},
        ) as phone,
    ):
        page = await login(phone, "/")
    assert "<script>" not in page.text
    assert (
        "<b id=nickname>&lt;script&gt;alert(&quot;小明&quot;)&lt;/script&gt; &amp; co</b>"
        in page.text
    )


COMMANDS = {
    "fastapi script": ["examples/fastapi_app.py"],
    "starlette script": ["examples/starlette_app.py"],
    "uvicorn --app-dir": ["-m", "uvicorn", "--app-dir", "examples", "fastapi_app:app"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_documented_command_serves_the_login_over_real_sockets(
    command: str, asgi_stack: Stack
) -> None:
    # The app's redirect_uri is http://127.0.0.1:PORT/wxauth/callback: register that host.
    asgi_stack.emulator(auto_approve=True, domains=("127.0.0.1",))
    port = free_port()
    argv = python_command(*COMMANDS[command], "--port", str(port))
    # A desktop browser is served anonymously: a 200 at / shows the app is up.
    with (
        running_server(
            command,
            argv,
            port=port,
            env={"WECHAT_EMULATOR_URL": asgi_stack.wechat_url},
            unset=SETTINGS_ENV,
        ) as server,
        httpx.Client(base_url=server.url, timeout=5.0) as client,
    ):
        client.headers["user-agent"] = WECHAT_UA
        final = client.get("/", headers=PAGE, follow_redirects=True)
        assert final.status_code == 200, server.output()
        assert (final.url.host, final.url.port, final.url.path) == ("127.0.0.1", port, "/")
        # app -> WeChat's authorize -> the callback -> back to the page.
        assert [r.status_code for r in final.history] == [302, 302, 302]
        assert NICKNAME_HTML in final.text
        me = client.get("/api/me", headers=JSON)
        assert me.json()["nickname"] == "小明🐼"
    assert f"Uvicorn running on {server.url}" in server.output()
