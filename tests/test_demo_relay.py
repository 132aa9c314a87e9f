"""`python -m wxauth_middleware.demo --relay` as a user runs it: a real process serving a relay on
auth.localhost and two sites on shop.localhost and news.localhost (one port), and Debian's
Chromium logging in on both sites through the relay, by the emulated WeChat's consent page."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from wxauth_middleware.demo.relay import RELAY_HOST, RELAY_SITES
from wxauth_middleware.emulator import DEFAULT_APP_ID, DEFAULT_PERSONAS

from .browser_support import DESKTOP_UA, Navigations, browser_page, screenshot
from .redis_support import RedisServer, require_redis_server
from .servers import ServerProcess, free_port, printed_on_failure, python_command, running_server

LILY = next(p for p in DEFAULT_PERSONAS if p.key == "lily")
XIAOMING = next(p for p in DEFAULT_PERSONAS if p.key == "xiaoming")
SHOP, NEWS = RELAY_SITES
# Query parameters that would carry an identity or what gets one.
IDENTITY_PARAMS = {"code", "openid", "unionid", "access_token", "refresh_token"}
WECHAT_UA_SHORT = "Mozilla/5.0 (iPhone) MicroMessenger/8.0.42"


@pytest.fixture(scope="module")
def relay_demo() -> Iterator[ServerProcess]:
    """The relay demo with its private redis-server (needs redis-server on PATH)."""
    require_redis_server()
    port = free_port()
    argv = python_command("-m", "wxauth_middleware.demo", "--relay", "--port", str(port))
    with running_server("demo-relay", argv, port=port) as server:
        yield server


def _origin(host: str, port: int) -> str:
    return f"http://{host}:{port}"


def _log_in_on(page: Page, origin: str, persona_key: str) -> None:
    """On a site's page: press "Browse as WeChat", choose a persona on the emulated consent
    page, press Allow, and wait to be back on the site's page."""
    response = page.goto(f"{origin}/")
    assert response is not None
    assert response.status == 200
    # Not WeChat yet: the site lets the page through, anonymous (its own session: none yet).
    expect(page.locator("#login-status")).to_have_attribute("data-logged-in", "false")
    page.locator("#as-wechat").click()
    page.wait_for_url(lambda url: urlsplit(url).path.endswith("/connect/oauth2/authorize"))
    authorize = parse_qs(urlsplit(page.url).query)
    # WeChat is asked to return to the relay, the one registered domain, not to the site.
    port = urlsplit(origin).port
    assert authorize["redirect_uri"] == [f"http://{RELAY_HOST}:{port}/wxauth/relay/callback"]
    assert authorize["appid"] == [DEFAULT_APP_ID]
    page.locator(f"#persona-{persona_key}").click()
    page.locator("#allow").click()
    page.wait_for_url(lambda url: url.split("#")[0] == f"{origin}/")
    page.wait_for_load_state("load")
    expect(page.locator("#login-status")).to_have_attribute("data-logged-in", "true")


def test_two_sites_log_in_through_the_relay_and_no_url_carries_an_identity(
    browser: Browser, relay_demo: ServerProcess
) -> None:
    scenario = "demo-relay"
    port = relay_demo.port
    shop, news = _origin(SHOP.host, port), _origin(NEWS.host, port)
    relay = _origin(RELAY_HOST, port)
    with (
        printed_on_failure(relay_demo),
        browser_page(browser, user_agent=DESKTOP_UA, scenario=scenario) as page,
    ):
        navigations = Navigations(page)
        _log_in_on(page, shop, "lily")
        expect(page.locator("#site-name")).to_contain_text("商店")
        expect(page.locator("#nickname")).to_have_text(LILY.nickname)
        shop_openid = page.locator("#openid").inner_text()
        assert page.locator("#app-id").inner_text() == DEFAULT_APP_ID
        screenshot(page, scenario, "1-shop")
        shop_visits = len(navigations.urls)

        # The news site: a session of its own (anonymous until its own login through the relay).
        _log_in_on(page, news, "lily")
        expect(page.locator("#site-name")).to_contain_text("新闻")
        expect(page.locator("#nickname")).to_have_text(LILY.nickname)
        news_openid = page.locator("#openid").inner_text()
        screenshot(page, scenario, "2-news")

        # Still logged in on the shop, as before.
        page.goto(f"{shop}/")
        expect(page.locator("#openid")).to_have_text(shop_openid)

        # Logging out of the shop ends the shop's session only.
        page.locator("#logout").click()
        page.wait_for_url(f"{shop}/logged-out")
        expect(page.locator("#logged-out")).to_be_visible()
        page.goto(f"{news}/")
        expect(page.locator("#openid")).to_have_text(news_openid)

    # One account, the relay's: the same openid on both sites, the persona's for that account.
    assert shop_openid == news_openid == LILY.openid_for(DEFAULT_APP_ID)
    urls = navigations.urls
    for site, visits in ((shop, urls[:shop_visits]), (news, urls[shop_visits:])):
        hosts = [f"{urlsplit(url).scheme}://{urlsplit(url).netloc}" for url in visits]
        assert relay in hosts, visits  # the login went through the relay
        callbacks = [url for url in visits if url.startswith(f"{site}/wxauth/callback")]
        assert len(callbacks) == 1, visits
        # The site's callback carries a ticket, and nothing else.
        assert set(parse_qs(urlsplit(callbacks[0]).query)) == {"ticket"}
    for url in urls:
        parts = urlsplit(url)
        carried = IDENTITY_PARAMS & set(parse_qs(parts.query))
        if parts.netloc == f"{RELAY_HOST}:{port}" and parts.path == "/wxauth/relay/callback":
            # WeChat's own redirect to the registered redirect_uri: its code ends there.
            assert carried == {"code"}, url
        else:
            assert not carried, url
        assert shop_openid not in url, url


def test_a_tampered_start_link_reaches_neither_wechat_nor_a_site(
    browser: Browser, relay_demo: ServerProcess
) -> None:
    scenario = "demo-relay-tampered"
    port = relay_demo.port
    shop = _origin(SHOP.host, port)
    with (
        printed_on_failure(relay_demo),
        browser_page(browser, user_agent=DESKTOP_UA, scenario=scenario) as page,
    ):
        navigations = Navigations(page)
        page.goto(f"{shop}/")
        page.locator("#as-wechat").click()
        page.wait_for_url(lambda url: urlsplit(url).path.endswith("/connect/oauth2/authorize"))
        start = next(url for url in navigations.urls if "/wxauth/relay/start" in url)
        # The attacker's edit: the same signed link, returning to a host of his own.
        attacker = f"http://evil.localhost:{port}/wxauth/callback"
        parts = urlsplit(start)
        query = [(k, attacker if k == "return" else v) for k, v in parse_qsl(parts.query)]
        tampered = parts._replace(query=urlencode(query)).geturl()
        before = len(navigations.urls)
        response = page.goto(tampered)
        assert response is not None
        assert response.status == 403
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "no-store" in response.headers["cache-control"]
        assert page.url == tampered  # no redirect: neither WeChat nor any site
        assert navigations.since(before) == [tampered]
        expect(page.locator("html")).to_have_attribute("lang", re.compile("^zh"))
        screenshot(page, scenario, "refused")


def test_the_relay_keeps_its_records_in_the_redis_given() -> None:
    """--redis-url: the relay's records go to that Redis (no private one is started)."""
    server = RedisServer(require_redis_server())
    server.start()
    try:
        port = free_port()
        argv = python_command(
            "-m",
            "wxauth_middleware.demo",
            "--relay",
            "--port",
            str(port),
            "--redis-url",
            server.url,
        )
        with running_server("demo-relay-redis", argv, port=port) as demo:
            assert "private redis-server" not in demo.output()
            with httpx.Client(base_url=demo.url, trust_env=False) as phone:
                start = phone.get(
                    "/",
                    headers={
                        "host": f"{SHOP.host}:{port}",
                        "user-agent": WECHAT_UA_SHORT,
                        "accept": "text/html",
                    },
                )
                assert start.status_code == 302
                link = start.headers["location"]
                assert link.startswith(f"http://{RELAY_HOST}:{port}/wxauth/relay/start?")
                relay = phone.get(
                    link.split(f":{port}", 1)[1],
                    headers={
                        "host": f"{RELAY_HOST}:{port}",
                        "user-agent": WECHAT_UA_SHORT,
                        "accept": "text/html",
                    },
                )
                assert relay.status_code == 302
                assert "/connect/oauth2/authorize?" in relay.headers["location"]
            with server.client() as client:
                assert list(client.scan_iter(match="wxauth:relay:start:*")), "no record kept"
    finally:
        server.close()


def _redis_port(output: str) -> int:
    match = re.search(r"private redis-server at redis://127\.0\.0\.1:(\d+)/0", output)
    assert match, output
    return int(match[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_the_private_redis_server_stops_with_the_demo() -> None:
    require_redis_server()
    port = free_port()
    argv = python_command("-m", "wxauth_middleware.demo", "--relay", "--port", str(port))
    with running_server("demo-relay-private", argv, port=port) as demo:
        redis_port = _redis_port(demo.output())
        assert _answers(redis_port)
        demo.stop()  # SIGTERM, as a service manager stops it
        assert demo.wait_exit() is not None
        assert "Application shutdown complete" in demo.output()
    assert not _answers(redis_port)


def _usage_error(flags: list[str], env: dict[str, str] | None = None) -> str:
    """What `demo --relay <flags>` prints when it exits with a usage error (status 2)."""
    port = free_port()
    argv = python_command("-m", "wxauth_middleware.demo", "--relay", "--port", str(port), *flags)
    demo = ServerProcess("demo-relay-usage", argv, port=port, env=env)
    demo.start()
    try:
        assert demo.wait_exit() == 2
        output = demo.output()
    finally:
        demo.stop()
    assert "Traceback" not in output
    return output


def test_without_redis_the_demo_says_how_to_get_it(tmp_path: Path) -> None:
    # A PATH with no redis-server on it (the demo runs on this interpreter, by its full path).
    output = _usage_error([], env={"PATH": str(tmp_path)})
    assert "--relay needs Redis" in output
    assert "apt-get install redis-server" in output
    assert "--redis-url" in output


@pytest.mark.parametrize(
    "flags", [["--wecom"], ["--second-account"], ["--strict"], ["--public-url", "http://x:1"]]
)
def test_the_relay_demo_refuses_options_it_does_not_take(flags: list[str]) -> None:
    assert f"--relay does not combine with {flags[0]}" in _usage_error(flags)


def test_a_bad_redis_url_is_a_usage_error() -> None:
    assert "--redis-url" in _usage_error(["--redis-url", "http://127.0.0.1:6379"])
