"""The pages with a QR code, through both adapters (issue 20, F6): the code is drawn off the
event loop (a worker thread on ASGI), what is too long to scan is cut to the page's path or
refused clearly, and a code drawn is remembered."""

from __future__ import annotations

import secrets
import threading

import pytest

from wxauth_middleware import pages

from .support import APP_ORIGIN, CHROME_UA, Stack

pytestmark = pytest.mark.anyio


@pytest.fixture
def drawn_in(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads the QR codes were drawn in."""
    threads: list[str] = []
    draw = pages.qr_code

    def recorded(url: str) -> str:
        threads.append(threading.current_thread().name)
        return draw(url)

    monkeypatch.setattr(pages, "qr_code", recorded)
    return threads


@pytest.mark.parametrize(("policy", "path"), [("refuse", "/page"), ("scan", "/page")])
async def test_a_qr_code_is_never_drawn_in_the_event_loops_thread(
    stack: Stack, drawn_in: list[str], policy: str, path: str
) -> None:
    stack.emulator()
    middleware = stack.middleware(other_browsers=policy)
    loop_thread = threading.current_thread().name  # the test's loop serves the ASGI app
    async with stack.phone(middleware, user_agent=CHROME_UA) as desktop:
        page = await desktop.get(path)
    assert page.status_code == (403 if policy == "refuse" else 200)
    assert "<svg" in page.text
    assert len(drawn_in) == 1
    assert drawn_in[0] != loop_thread


def _svg(page: str) -> str:
    start = page.index("<svg")
    return page[start : page.index("</svg>", start) + len("</svg>")]


async def test_a_long_address_gets_the_qr_code_of_its_path(stack: Stack) -> None:
    stack.emulator()
    middleware = stack.middleware(other_browsers="refuse")
    target = "/orders/2024?" + "&".join(f"filter{i}=value{i}" for i in range(120))  # ~2 KB
    async with stack.phone(middleware, user_agent=CHROME_UA) as desktop:
        page = await desktop.get(target)
    assert page.status_code == 403
    assert len(APP_ORIGIN + target) > pages.QR_MAX
    # The code holds the page without its query, and says so; the whole address is shown.
    assert _svg(page.text) == _svg(pages.qr_code(f"{APP_ORIGIN}/orders/2024"))
    assert "不含其后的参数" in page.text
    assert "without its query" in page.text
    assert "filter119=value119" in page.text


@pytest.mark.parametrize("path", ["/" + "p" * 300, "/wxauth/login?next=/" + "n" * 1000])
async def test_an_address_too_long_to_scan_gets_no_qr_code_and_says_so(
    stack: Stack, path: str
) -> None:
    stack.emulator()
    middleware = stack.middleware(other_browsers="refuse")
    async with stack.phone(middleware, user_agent=CHROME_UA) as desktop:
        page = await desktop.get(path)
    assert page.status_code == 403
    assert "<svg" not in page.text
    assert "这个地址太长，无法生成二维码" in page.text
    assert "This address is too long for a QR code" in page.text


async def test_a_qr_code_drawn_is_remembered(stack: Stack) -> None:
    stack.emulator()
    middleware = stack.middleware(other_browsers="refuse")
    path = f"/remembered/{secrets.token_hex(8)}"  # drawn by no other test
    before = pages.qr_code.cache_info()
    async with stack.phone(middleware, user_agent=CHROME_UA) as desktop:
        first = await desktop.get(path)
        again = await desktop.get(path)
    assert first.text == again.text
    after = pages.qr_code.cache_info()
    assert (after.misses, after.hits) == (before.misses + 1, before.hits + 1)
