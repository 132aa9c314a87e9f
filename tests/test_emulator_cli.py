"""`python -m wxauth_middleware.emulator`: argument handling, and one real server run."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from wxauth_middleware.demo import create_demo_app
from wxauth_middleware.demo.__main__ import main as demo_main
from wxauth_middleware.emulator import (
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    DEFAULT_PERSONAS,
    DEFAULT_WEBSITE_APP_ID,
    DEFAULT_WEBSITE_APP_SECRET,
)
from wxauth_middleware.emulator.__main__ import banner, build_emulator, build_parser, main

from .servers import free_port, python_command, running_server


def test_non_loopback_host_needs_allow_remote(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--host", "0.0.0.0"])  # noqa: S104
    assert exit_info.value.code == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_negative_latency_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--latency", "-1"])
    assert "--latency" in capsys.readouterr().err


def test_bad_domain_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--domain", "localhost:8000"])
    assert "port" in capsys.readouterr().err


def test_options_build_the_emulator() -> None:
    args = build_parser().parse_args(
        [
            "--auto-approve",
            "--app-id",
            "wxabc",
            "--app-secret",
            "s3cret",
            "--domain",
            "demo.test",
            "--domain",
            "Other.Test",
            "--persona",
            "lily",
            "--allow-remote",
            "--website-app-id",
            "wxweb",
            "--website-app-secret",
            "webs3cret",
        ]
    )
    emulator = build_emulator(args)
    assert emulator.app_id == "wxabc"
    assert emulator.app_secret == "s3cret"
    assert emulator.website_app_id == "wxweb"
    assert emulator.website_app_secret == "webs3cret"
    assert emulator.domains == ("demo.test", "other.test")
    assert emulator.auto_approve is True
    assert emulator.default_persona == "lily"
    assert emulator.allow_remote is True


def test_defaults() -> None:
    emulator = build_emulator(build_parser().parse_args([]))
    assert emulator.app_id == DEFAULT_APP_ID
    assert emulator.website_app_id == DEFAULT_WEBSITE_APP_ID
    assert emulator.website_app_secret == DEFAULT_WEBSITE_APP_SECRET
    assert emulator.domains == ("127.0.0.1", "localhost")
    assert emulator.auto_approve is False
    assert emulator.default_persona == DEFAULT_PERSONAS[0].key
    assert emulator.allow_remote is False


def test_go_live_options() -> None:
    relaxed = build_emulator(build_parser().parse_args([]))
    assert not relaxed.go_live.any_on
    assert "go-live settings: off" in banner(relaxed, "127.0.0.1", 8400, DEFAULT_APP_SECRET)
    args = build_parser().parse_args(
        [
            *("--ip-allowlist", "203.0.113.7", "--ip-allowlist", "10.0.0.0/8"),
            *("--js-domain", "example.com", "--daily-quota", "2000", "--minute-quota", "100"),
        ]
    )
    strict = build_emulator(args)
    assert [str(n) for n in strict.go_live.ip_allowlist or ()] == ["203.0.113.7/32", "10.0.0.0/8"]
    assert strict.go_live.js_domains == ("example.com",)
    assert (strict.go_live.daily_quota, strict.go_live.minute_quota) == (2000, 100)
    text = banner(strict, "127.0.0.1", 8400, DEFAULT_APP_SECRET)
    assert "IP allow-list for token calls (40164 elsewhere): 203.0.113.7/32, 10.0.0.0/8" in text
    assert "JS-SDK safe domains (config:invalid url domain elsewhere): example.com" in text
    assert "daily quota: 2000" in text
    assert "minute quota: 100" in text
    text.encode("ascii")  # the terminal's encoding is unknown


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ip-allowlist", "1.2.3.4:80"], "not an IP address or network"),
        (["--js-domain", "https://example.com"], "without http://"),
        (["--daily-quota", "0"], "daily_quota must be a whole number"),
    ],
)
def test_bad_go_live_options_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_no_website_app_option() -> None:
    emulator = build_emulator(build_parser().parse_args(["--no-website-app"]))
    assert emulator.website_app_id is None
    text = banner(emulator, "127.0.0.1", 8400, DEFAULT_APP_SECRET)
    assert "website QR-code login: disabled" in text
    assert "qrconnect_url" not in text


def test_website_app_id_equal_to_app_id_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--website-app-id", DEFAULT_APP_ID])
    assert "website_app_id must differ" in capsys.readouterr().err


def test_banner_lists_the_website_app() -> None:
    emulator = build_emulator(build_parser().parse_args([]))
    text = banner(emulator, "::1", 8400, DEFAULT_APP_SECRET, DEFAULT_WEBSITE_APP_SECRET)
    assert f"website_app_id={DEFAULT_WEBSITE_APP_ID}" in text
    assert f"website_app_secret={DEFAULT_WEBSITE_APP_SECRET}" in text
    assert "qrconnect_url=http://[::1]:8400/connect/qrconnect" in text


@pytest.mark.anyio
async def test_latency_option_slows_every_api_call() -> None:
    emulator = build_emulator(build_parser().parse_args(["--latency", "0.05"]))
    transport = httpx.ASGITransport(app=emulator)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for path in ("/sns/auth", "/sns/userinfo", "/sns/auth"):
            started = time.monotonic()
            await client.get(path)
            assert time.monotonic() - started >= 0.05
        started = time.monotonic()
        await client.get("/")  # pages are not API calls
        assert time.monotonic() - started < 0.05


def test_serves_over_http_with_auto_approve() -> None:
    port = free_port()
    argv = python_command("-m", "wxauth_middleware.emulator", "--port", str(port), "--auto-approve")
    with running_server("emulator", argv, port=port, ready_timeout=15) as server:
        base = server.url
        redirect_uri = quote("http://localhost:8000/wxauth/callback", safe="")
        authorize = httpx.get(
            f"{base}/connect/oauth2/authorize?appid={DEFAULT_APP_ID}&redirect_uri={redirect_uri}"
            "&response_type=code&scope=snsapi_userinfo&state=cli1",
            timeout=5,
        )
        assert authorize.status_code == 302
        query = parse_qs(urlsplit(authorize.headers["location"]).query)
        assert query["state"] == ["cli1"]
        token = httpx.get(
            f"{base}/sns/oauth2/access_token",
            params={
                "appid": DEFAULT_APP_ID,
                "secret": DEFAULT_APP_SECRET,
                "code": query["code"][0],
                "grant_type": "authorization_code",
            },
            timeout=5,
        )
        assert token.headers["content-type"] == "text/plain"
        assert token.json()["openid"] == DEFAULT_PERSONAS[0].openid_for(DEFAULT_APP_ID)
        scanned = httpx.get(
            f"{base}/connect/qrconnect?appid={DEFAULT_WEBSITE_APP_ID}&redirect_uri={redirect_uri}"
            "&response_type=code&scope=snsapi_login&state=cli2",
            timeout=5,
        )
        assert scanned.status_code == 302
        assert parse_qs(urlsplit(scanned.headers["location"]).query)["state"] == ["cli2"]
    output = server.output()
    assert f"authorize_url={base}/connect/oauth2/authorize" in output
    assert f"api_base_url={base}" in output
    assert DEFAULT_APP_SECRET in output
    assert f"qrconnect_url={base}/connect/qrconnect" in output
    assert DEFAULT_WEBSITE_APP_SECRET in output


def test_demo_strict_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        demo_main(["--ip-allowlist", "127.0.0.1"])
    assert exited.value.code == 2
    assert "strict-mode settings: add --strict" in capsys.readouterr().err
    strict = create_demo_app(
        public_url="http://127.0.0.1:8000", strict=True, js_domains=["127.0.0.1"]
    ).state.emulator.go_live
    assert strict.ip_allowlist == ()  # on, and empty: the demo's own calls get 40164
    assert strict.js_domains == ("127.0.0.1",)
    assert strict.daily_quota is not None
    assert strict.minute_quota is not None
    relaxed = create_demo_app(public_url="http://127.0.0.1:8000").state.emulator.go_live
    assert not relaxed.any_on
    with pytest.raises(ValueError, match="strict-mode settings"):
        create_demo_app(public_url="http://127.0.0.1:8000", ip_allowlist=["127.0.0.1"])
