"""The README's quickstarts run as written against the emulator (only its address differs:
the test's emulator listens on a free port, not 8400): a WeChat visit logs in and the page
greets the user; the README's logout button logs out, and the visitor sees that they did."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import httpx
import pytest

from .support import APP_ORIGIN, WECHAT_UA, Stack, ThreadedWSGITransport, location, shown

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
# The pages with a quickstart per framework: the README, and the Chinese guide's.
QUICKSTARTS = (README, REPO / "docs" / "zh" / "quickstart.md")
WRITTEN_EMULATOR = "http://127.0.0.1:8400"


def quickstart(page: Path, framework: str) -> str:
    """The page's first Python block under `### <framework>`."""
    section = page.read_text("utf-8").split(f"\n### {framework}\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def logout_form() -> str:
    section = README.read_text("utf-8").split("\n### Log out\n", 1)[1]
    return section.split("```html\n", 1)[1].split("```", 1)[0].strip()


def load(page: Path, framework: str, emulator_url: str) -> Any:
    source = quickstart(page, framework)
    assert source.count(WRITTEN_EMULATOR) == 2  # authorize_url and api_base_url, shown there
    module = types.ModuleType(f"readme_{framework.lower()}")
    code = compile(source.replace(WRITTEN_EMULATOR, emulator_url), str(page), "exec")
    exec(code, vars(module))  # noqa: S102 (the README's own code)
    return module.app


@pytest.mark.parametrize("page", QUICKSTARTS, ids=lambda path: path.name)
@pytest.mark.parametrize("framework", ["Starlette", "FastAPI", "Flask"])
async def test_the_quickstart_logs_in_against_the_emulator(
    page: Path, framework: str, asgi_stack: Stack
) -> None:
    asgi_stack.emulator(auto_approve=True)
    app = load(page, framework, asgi_stack.wechat_url)
    transport: httpx.AsyncBaseTransport = (
        ThreadedWSGITransport(app) if framework == "Flask" else httpx.ASGITransport(app=app)
    )
    async with httpx.AsyncClient(
        mounts={APP_ORIGIN: transport},
        base_url=APP_ORIGIN,
        headers={"user-agent": WECHAT_UA, "accept": "text/html,*/*;q=0.8"},
    ) as phone:
        start = await phone.get("/")
        assert location(start).startswith(asgi_stack.authorize_url)
        callback = await shown(phone, location(await phone.get(location(start))))
        home = await phone.get(location(callback))
        # The README's logout button, posted from a page of the site.
        form = logout_form()
        assert 'action="/wxauth/logout?next=/"' in form
        out = await phone.post("/wxauth/logout?next=/", headers={"origin": APP_ORIGIN})
        after = await phone.get(location(out))
    assert home.status_code == 200
    assert "你好，小明🐼" in home.text
    assert after.status_code == 200
    assert "已退出登录" in after.text
    assert 'id="log-in-again"' in after.text
