"""End to end in a real browser: headless Chromium (Debian's, driven by Playwright) against real
server processes — the demo under uvicorn, and the Flask example under gunicorn with the WeChat
emulator as its own process — through the consent page and back, logged in.

Screenshots of the key steps land in test-artifacts/browser/. Locally the tests skip when
Chromium is not installed; with CI set, a missing Chromium fails them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from wxauth_middleware.emulator import DEFAULT_APP_ID

from .browser_support import (
    DESKTOP_UA,
    WECHAT_UA,
    Navigations,
    browser_page,
    screenshot,
)
from .servers import (
    REPO_ROOT,
    ServerProcess,
    free_port,
    printed_on_failure,
    python_command,
    running_server,
)
from .support import authorize_params

XIAOMING = "小明🐼"
LILY = "Lily 🌸 李"
CALLBACK_PATH = "/wxauth/callback"
STATE_RE = re.compile(r"[A-Za-z0-9]{1,128}")
FLASK_APP = REPO_ROOT / "examples" / "flask_app.py"
# The README's logout button.
LOGOUT_FORM = '<form method="post" action="/wxauth/logout?next=/"><button>退出登录</button></form>'


# -- fixtures: the servers, once per module (the browser and the demo: conftest.py) ------


@pytest.fixture(scope="module")
def flask_stack() -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """The emulator (consent page on) and the Flask example under gunicorn, each a process."""
    if not FLASK_APP.is_file():
        pytest.fail(f"{FLASK_APP} is missing: the Flask example gunicorn serves", pytrace=False)
    emulator_port, site_port = free_port(), free_port()
    emulator_argv = python_command("-m", "wxauth_middleware.emulator", "--port", str(emulator_port))
    with running_server(
        "emulator", emulator_argv, port=emulator_port, ready_status=None
    ) as emulator:
        site_argv = python_command(
            "-m",
            "gunicorn",
            "--chdir",
            "examples",
            "-b",
            f"127.0.0.1:{site_port}",
            "--workers",
            "1",
            "--graceful-timeout",
            "5",
            "--access-logfile",
            "-",
            "flask_app:app",
        )
        env = {"WECHAT_EMULATOR_URL": emulator.url}
        with running_server(
            "gunicorn", site_argv, port=site_port, env=env, ready_status=None
        ) as site:
            yield emulator, site


# -- steps shared by the scenarios ---------------------------------------------------------


def _at(path: str, query: str = "") -> Callable[[str], bool]:
    """A URL predicate: this path and query, whatever the origin and fragment."""

    def matches(url: str) -> bool:
        parts = urlsplit(url)
        return parts.path == path and parts.query == query

    return matches


def assert_consent_page(page: Page, *, authorize_url: str, site: str) -> str:
    """The emulator's consent page, reached through a WeChat-shaped authorize link; returns
    the state."""
    values = authorize_params(page.url, authorize_url)
    assert values["appid"] == DEFAULT_APP_ID
    assert values["redirect_uri"] == site + CALLBACK_PATH
    assert values["response_type"] == "code"
    assert values["scope"] == "snsapi_userinfo"
    assert STATE_RE.fullmatch(values["state"])
    # The page's own script found the fragment: no error shown, buttons usable.
    expect(page.locator("#fragment-error")).to_be_hidden()
    expect(page.locator("#allow")).to_be_enabled()
    expect(page.locator("#refuse")).to_be_enabled()
    expect(page.locator("#appid")).to_have_text(DEFAULT_APP_ID)
    return values["state"]


def allow_as(page: Page, persona: str, *, back_to: Callable[[str], bool]) -> list[str]:
    """Choose a persona, press Allow, wait to be back; returns the navigations on the way."""
    radio = page.locator(f"#persona-{persona}")
    radio.click()
    expect(radio).to_be_checked()
    navigations = Navigations(page)
    page.locator("#allow").click()
    page.wait_for_url(back_to)
    page.wait_for_load_state("load")
    return navigations.urls


def assert_came_back_through_callback(hops: list[str], *, site: str, state: str) -> None:
    """Allow -> emulator confirm -> callback?code&state -> the starting page."""
    callbacks = [url for url in hops if urlsplit(url).path == CALLBACK_PATH]
    assert len(callbacks) == 1, hops
    parts = urlsplit(callbacks[0])
    assert f"{parts.scheme}://{parts.netloc}" == site
    query = dict(parse_qsl(parts.query))
    assert query["state"] == state
    assert query["code"]
    assert len(hops) <= 4, hops
    # The page the browser ends on carries neither the code nor the state.
    final = urlsplit(hops[-1])
    assert "code=" not in final.query
    assert "state=" not in final.query


# -- (a) the demo, served by uvicorn --------------------------------------------------------


def test_demo_wechat_browser_logs_in_and_returns_to_its_page(
    browser: Browser, demo: ServerProcess
) -> None:
    scenario = "demo-wechat"
    authorize_url = f"{demo.url}/_wechat/connect/oauth2/authorize"
    with (
        printed_on_failure(demo),
        browser_page(browser, user_agent=WECHAT_UA, scenario=scenario) as page,
    ):
        response = page.goto(f"{demo.url}/profile?x=1")
        assert response is not None
        assert response.status == 200
        # The middleware redirected the page visit, not the app.
        first = response.request.redirected_from
        assert first is not None
        assert first.url == f"{demo.url}/profile?x=1"
        state = assert_consent_page(page, authorize_url=authorize_url, site=demo.url)
        expect(page.locator("label[for=persona-xiaoming] .nick")).to_have_text(XIAOMING)
        screenshot(page, scenario, "1-consent")

        hops = allow_as(page, "xiaoming", back_to=_at("/profile", "x=1"))
        assert_came_back_through_callback(hops, site=demo.url, state=state)
        assert urlsplit(page.url).path == "/profile"
        assert urlsplit(page.url).query == "x=1"
        expect(page.locator("#login-status")).to_have_attribute("data-logged-in", "true")
        expect(page.locator("#nickname")).to_have_text(XIAOMING)
        assert page.locator("#nickname").inner_text() == XIAOMING
        assert page.locator("#field-nickname").inner_text() == XIAOMING
        assert page.locator("#field-scope").inner_text() == "snsapi_userinfo"
        screenshot(page, scenario, "2-logged-in")

        # The session cookie holds: the home page shows the user with no new login.
        navigations = Navigations(page)
        response = page.goto(f"{demo.url}/")
        assert response is not None
        assert response.status == 200
        assert response.request.redirected_from is None
        assert navigations.urls == [f"{demo.url}/"]
        expect(page.locator("#login-status")).to_have_attribute("data-logged-in", "true")
        assert page.locator("#nickname").inner_text() == XIAOMING


def test_demo_desktop_browser_switches_to_wechat_and_logs_in(
    browser: Browser, demo: ServerProcess
) -> None:
    scenario = "demo-desktop"
    authorize_url = f"{demo.url}/_wechat/connect/oauth2/authorize"
    with (
        printed_on_failure(demo),
        browser_page(browser, user_agent=DESKTOP_UA, scenario=scenario) as page,
    ):
        # Not WeChat: the middleware lets the page through, anonymous.
        response = page.goto(f"{demo.url}/")
        assert response is not None
        assert response.status == 200
        assert response.request.redirected_from is None
        assert urlsplit(page.url).path == "/"
        expect(page.locator("#login-status")).to_have_attribute("data-logged-in", "false")
        expect(page.locator("#nickname")).to_have_count(0)
        screenshot(page, scenario, "1-anonymous")

        # "Browse as WeChat": the next page load is WeChat's, so it goes to the consent page.
        page.locator("#as-wechat").click()
        page.wait_for_url(lambda url: urlsplit(url).path.endswith("/connect/oauth2/authorize"))
        state = assert_consent_page(page, authorize_url=authorize_url, site=demo.url)
        screenshot(page, scenario, "2-consent")

        hops = allow_as(page, "lily", back_to=_at("/"))
        assert_came_back_through_callback(hops, site=demo.url, state=state)
        assert urlsplit(page.url).path == "/"
        expect(page.locator("#login-status")).to_have_attribute("data-logged-in", "true")
        expect(page.locator("#nickname")).to_have_text(LILY)
        assert page.locator("#nickname").inner_text() == LILY
        expect(page.locator("#banner")).to_contain_text("Browsing as WeChat")
        screenshot(page, scenario, "3-logged-in")


def test_demo_refusing_ends_on_a_page_not_in_a_loop(browser: Browser, demo: ServerProcess) -> None:
    scenario = "demo-refuse"
    authorize_url = f"{demo.url}/_wechat/connect/oauth2/authorize"
    with (
        printed_on_failure(demo),
        browser_page(browser, user_agent=WECHAT_UA, scenario=scenario) as page,
    ):
        page.goto(f"{demo.url}/profile")
        assert_consent_page(page, authorize_url=authorize_url, site=demo.url)

        navigations = Navigations(page)
        with page.expect_navigation() as refused:
            page.locator("#refuse").click()
        response = refused.value
        assert response is not None
        assert response.status == 403
        # Let anything the page might do on its own (a meta refresh, a script) happen.
        page.wait_for_load_state("networkidle")
        hops = navigations.urls
        # Refuse -> emulator confirm -> callback without code: a page, two requests.
        assert len(hops) <= 3, hops
        assert urlsplit(hops[-1]).path == CALLBACK_PATH
        assert "code=" not in urlsplit(hops[-1]).query
        # The address bar holds no state or code: the page put its clean address there.
        address = urlsplit(page.url)
        assert (address.path, address.query[:5]) == (CALLBACK_PATH, "page="), page.url
        expect(page.locator("#error-code")).to_have_text("login_declined")
        expect(page.locator("#error-title")).to_have_text("你已拒绝微信登录")
        expect(page.locator("#error-title-en")).to_have_text("WeChat login was declined")
        expect(page.locator("#allow")).to_have_count(0)
        expect(page.locator("#login-status")).to_have_count(0)
        # The way back leads to the page the login started from.
        expect(page.locator("#retry")).to_have_attribute("href", "/profile")
        screenshot(page, scenario, "1-refused")
        assert len(navigations.urls) == len(hops), navigations.urls

        # Trying again starts one new login: the consent page, not a loop.
        page.locator("#retry").click()
        page.wait_for_url(lambda url: urlsplit(url).path.endswith("/connect/oauth2/authorize"))
        assert_consent_page(page, authorize_url=authorize_url, site=demo.url)


# -- (b) the Flask example, served by gunicorn, with the emulator as its own process ------


def test_flask_example_under_gunicorn_logs_in_through_the_emulator(
    browser: Browser, flask_stack: tuple[ServerProcess, ServerProcess]
) -> None:
    emulator, site = flask_stack
    scenario = "flask-wechat"
    authorize_url = f"{emulator.url}/connect/oauth2/authorize"
    with (
        printed_on_failure(emulator, site),
        browser_page(browser, user_agent=WECHAT_UA, scenario=scenario) as page,
    ):
        response = page.goto(f"{site.url}/")
        assert response is not None
        assert response.status == 200
        first = response.request.redirected_from
        assert first is not None
        assert first.url == f"{site.url}/"
        state = assert_consent_page(page, authorize_url=authorize_url, site=site.url)
        screenshot(page, scenario, "1-consent")

        hops = allow_as(page, "xiaoming", back_to=_at("/"))
        assert_came_back_through_callback(hops, site=site.url, state=state)
        assert urlsplit(page.url).path == "/"
        expect(page.locator("#nickname")).to_have_text(XIAOMING)
        assert page.locator("#nickname").inner_text() == XIAOMING
        expect(page.locator("body")).to_contain_text(f"你好, {XIAOMING}")
        screenshot(page, scenario, "2-logged-in")

        # The same browser session (its cookies) reaches the JSON endpoint as that user.
        api = page.context.request.get(
            f"{site.url}/api/me", headers={"accept": "application/json"}, max_redirects=0
        )
        assert api.status == 200
        me = api.json()
        assert me["nickname"] == XIAOMING
        assert me["scope"] == "snsapi_userinfo"

        # The README's logout recipe, as written, in a page of the site: logged out, and the
        # page says so instead of going straight back to WeChat.
        readme = (REPO_ROOT / "README.md").read_text("utf-8")
        assert LOGOUT_FORM in readme
        page.evaluate("form => document.body.insertAdjacentHTML('beforeend', form)", LOGOUT_FORM)
        with page.expect_navigation(url=f"{site.url}/"):
            page.locator("form[action^='/wxauth/logout'] button").click()
        expect(page.locator("h1")).to_have_text("已退出登录")
        screenshot(page, scenario, "3-logged-out")
        page.reload()  # still logged out: no silent login behind the visitor's back
        expect(page.locator("h1")).to_have_text("已退出登录")
        # One tap logs in again, back to the page.
        page.locator("#log-in-again").click()
        assert_consent_page(page, authorize_url=authorize_url, site=site.url)
        allow_as(page, "xiaoming", back_to=_at("/"))
        expect(page.locator("#nickname")).to_have_text(XIAOMING)


def test_demo_logout_takes_the_sites_own_post_never_another_sites(
    browser: Browser, demo: ServerProcess
) -> None:
    """Logout CSRF, in Chromium: a link, an image and an auto-submitted form on another site
    leave the session; the site's own log-out button ends it."""
    scenario = "demo-logout"
    logout = f"{demo.url}/wxauth/logout?next=/"
    evil = "http://evil.test/"
    attack = (
        f'<img src="{logout}"><form id="f" method="post" action="{logout}"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )
    with (
        printed_on_failure(demo),
        browser_page(browser, user_agent=WECHAT_UA, scenario=scenario) as page,
    ):
        page.goto(f"{demo.url}/profile")
        allow_as(page, "xiaoming", back_to=_at("/profile"))
        expect(page.locator("#login-status")).to_have_attribute("data-logged-in", "true")
        # Another site's page, served in place of evil.test: its form posts cross-site.
        page.route(evil, lambda route: route.fulfill(content_type="text/html", body=attack))
        with page.expect_navigation(url=logout):
            page.goto(evil)
        assert page.locator("button[type=submit]").inner_text() == "退出登录 · Log out"
        screenshot(page, scenario, "1-cross-site-refused")
        page.goto(logout)  # a link: the page with the button, nothing more
        page.goto(f"{demo.url}/")
        expect(page.locator("#login-status")).to_have_attribute("data-logged-in", "true")
        me = f"{demo.url}/api/me"
        assert page.request.get(me, headers={"accept": "application/json"}).status == 200
        # The site's own log-out button (a same-origin form post) logs out.
        page.locator("#logout").click()
        page.wait_for_url(lambda url: urlsplit(url).netloc == urlsplit(demo.url).netloc)
        page.wait_for_load_state("load")
        assert page.request.get(me, headers={"accept": "application/json"}).status == 401
