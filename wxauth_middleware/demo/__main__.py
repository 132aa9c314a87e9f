"""``python -m wxauth_middleware.demo``: serve the demo site, emulator included, with uvicorn.

    python -m wxauth_middleware.demo [--host H] [--port P] [--auto-approve]
                                     [--public-url URL] [--allow-remote] [--redis-url URL]
                                     [--strict [--ip-allowlist ADDR] [--js-domain DOMAIN]]
                                     [--second-account [HOST]] [--wecom]
    python -m wxauth_middleware.demo --relay [--redis-url URL] [--host H] [--port P]
                                     [--auto-approve]

Sessions are the middleware's signed cookie by default. ``--redis-url redis://HOST:PORT/DB``
keeps them in that Redis instead (the middleware's ``redis_url`` option; keys under
``wxauth:``, needs redis-py: ``pip install "wxauth-middleware[redis]"``): the cookie holds a
signed id, the demo's "Log out" deletes the stored session, and a duplicate callback is
answered from Redis. A URL that is not a Redis URL is a usage error (exit status 2); a Redis that
does not answer at start is only a warning: the demo then answers 503 to requests that need the
store until Redis is back, as the middleware does in production.

``--relay`` serves another demo: a relay (`WeChatAuthRelay`) on auth.localhost and two sites
on shop.localhost and news.localhost that log their WeChat visitors in through it, all on the
one port (browsers resolve ``*.localhost`` to this machine and keep cookies per host name, so
each is its own site; see demo/relay.py). The relay keeps its records in Redis: ``--redis-url``
if given, else a private ``redis-server`` the demo starts on a free 127.0.0.1 port and stops
at exit; without either, a usage error says how to install it.

``--strict`` makes the emulated Official Account as strict as a live one (docs/going-live.md
walks through each error it then shows): the IP allow-list for token calls (empty unless
``--ip-allowlist`` is given: 40164), the JS-SDK safe domains (empty unless ``--js-domain``:
``config:invalid url domain``) and quotas.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.applications import Starlette

from ..effects import StoreCommands
from ..emulator.__main__ import parse_server_args, serve, server_parser
from ..storage.redis_client import check_redis_url, redacted_url, redis_client, run_sync
from .app import EMULATOR_PREFIX, SECOND_APP_ID, SECOND_HOST, create_demo_app
from .private_redis import REDIS_INSTALL_HINT, PrivateRedis, redis_server_program
from .relay import RELAY_HOST, RELAY_SITES, create_relay_demo
from .wecom import WECOM_HOST, WECOM_PATH

# Addresses that bind every interface: the browser must use a real address to come back.
_UNSPECIFIED = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104


def _origin(host: str, port: int) -> str:
    host = _UNSPECIFIED.get(host.strip("[]"), host.strip("[]"))
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _log_logins() -> None:
    # Show the middleware's own log lines (login ok / failed), formatted like uvicorn's.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)-9s %(message)s"))
    logger = logging.getLogger("wxauth_middleware")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def build_parser() -> argparse.ArgumentParser:
    parser = server_parser(
        "python -m wxauth_middleware.demo",
        "Serve a small demo site behind WeChatAuthMiddleware, with a WeChat emulator "
        "(not the real WeChat) embedded, so the whole WeChat login works in a desktop "
        "browser, offline, without a WeChat account.",
        port=8000,
        auto_approve="log in at once as the default persona instead of showing the consent page",
    )
    parser.add_argument(
        "--public-url",
        metavar="URL",
        help="the origin browsers use to reach the demo (default: http://HOST:PORT); needed "
        "with --allow-remote, e.g. http://192.168.1.20:8000",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host and let the embedded emulator answer other machines; "
        "it logs in anyone who asks, so only on a trusted network",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="make the emulated Official Account as strict as a live one: an IP allow-list "
        "for token calls (40164), JS-SDK safe domains (config:invalid url domain), quotas "
        "(45009/45011); see docs/going-live.md",
    )
    parser.add_argument(
        "--ip-allowlist",
        action="append",
        default=[],
        metavar="ADDR",
        help="with --strict: an address or network on the IP allow-list (repeatable; the "
        "demo calls the emulator from 127.0.0.1)",
    )
    parser.add_argument(
        "--js-domain",
        action="append",
        default=[],
        metavar="DOMAIN",
        help="with --strict: a JS-SDK safe domain (JS接口安全域名; repeatable)",
    )
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        help="keep the sessions in this Redis instead of the signed cookie, e.g. "
        "redis://127.0.0.1:6379/0 (keys under 'wxauth:'; needs redis-py: pip install "
        '"wxauth-middleware[redis]"); the cookie then holds a signed id and "Log out" ends '
        "the stored session; with --relay, the relay's records (logins in progress, tickets) "
        "instead",
    )
    parser.add_argument(
        "--second-account",
        nargs="?",
        const=SECOND_HOST,
        metavar="HOST",
        help="also serve a second Official Account on this other loopback host name (default: "
        f"{SECOND_HOST}), beside the first at 127.0.0.1 and localhost: the same persona has "
        "another openid there, and one unionid",
    )
    parser.add_argument(
        "--wecom",
        action="store_true",
        help=f"also serve a WeCom app on {WECOM_HOST} (another name for this "
        'machine), the emulator playing its corp: the WeCom page with its "Browse as WeCom" '
        "switch, the JS-SDK with wx.agentConfig, and WeCom's desktop login",
    )
    parser.add_argument(
        "--relay",
        action="store_true",
        help=f"serve the relay demo instead: a WeChatAuthRelay on {RELAY_HOST} (the one "
        "domain the emulated account registers) and two sites that log in through it, "
        + " and ".join(site.host for site in RELAY_SITES)
        + ", each with its own relay_site_id, secret and session, all on this one port "
        "(browsers resolve *.localhost to this machine and keep cookies per host name). The "
        "relay needs Redis: --redis-url, or else a private redis-server started on a free "
        "127.0.0.1 port and stopped at exit (redis-server must then be on PATH)",
    )
    return parser


def _as_flag(message: str) -> str:
    """An option's error message naming the command-line flag ("redis_url ..." -> "--redis-url
    ...")."""
    for option in ("public_url", "redis_url", "second_account", "wecom"):
        if message.startswith(option + " "):
            return "--" + option.replace("_", "-") + message[len(option) :]
    return message


def _check_redis(url: str) -> None:
    """Warn (on stderr) when the Redis at `url` does not answer now; the demo serves anyway."""
    try:
        client = redis_client(url)
        try:
            run_sync(client, StoreCommands((("PING",),)))
        finally:
            client.close()
    except Exception as exc:  # whatever the failure (refused, timeout, auth): a warning
        print(
            f"warning: Redis at {redacted_url(url)} does not answer ({type(exc).__name__}: {exc}); "
            "requests that need the session store get a 503 until it does",
            file=sys.stderr,
            flush=True,
        )


def banner(
    public_url: str,
    *,
    auto_approve: bool,
    redis_url: str | None = None,
    strict: list[str] | None = None,
    second_account: str | None = None,
    wecom: bool = False,
) -> str:
    sessions = (
        f"in Redis at {redacted_url(redis_url)} (keys under wxauth:)"
        if redis_url
        else "in the signed session cookie"
    )
    mode = (
        "auto-approve: logins succeed at once as the default persona (xiaoming)"
        if auto_approve
        else "consent page: choose a persona, then press Allow"
    )
    second = []
    if second_account is not None:
        port = urlsplit(public_url).port
        origin = f"http://{second_account}" + (f":{port}" if port else "")
        second = [f"  A second Official Account ({SECOND_APP_ID}): {origin}/"]
    if wecom:
        port = urlsplit(public_url).port
        origin = f"http://{WECOM_HOST}" + (f":{port}" if port else "")
        second.append(f'  WeCom app: {origin}{WECOM_PATH} (press "Browse as WeCom")')
    # ASCII only: the terminal's encoding is unknown.
    return "\n".join(
        [
            "wxauth-middleware demo: a site behind WeChatAuthMiddleware, WeChat emulated inside",
            f'  Open {public_url}/ in your browser and press "Browse as WeChat".',
            *second,
            f"  WeChat emulator (not the real WeChat): {public_url}{EMULATOR_PREFIX}/  [{mode}]",
            f"  Sessions: {sessions}.",
            *(
                []
                if strict is None
                else [
                    "  Strict mode: the emulated account is as strict as a live one",
                    *(f"    {line}" for line in strict),
                    "    Each error and its fix: docs/going-live.md",
                ]
            ),
            "  The middleware logs each login below; its warning that it is not talking to",
            "  WeChat itself is expected here: it talks to the embedded emulator.",
            "  Press Ctrl+C to stop.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_server_args(
        parser,
        argv,
        ". The demo's embedded WeChat emulator answers only this machine (loopback) and logs "
        "in anyone who asks; add --allow-remote (and --public-url) if you really mean to serve "
        "other machines",
    )
    if args.relay:
        return _serve_relay(parser, args)
    if args.allow_remote and args.public_url is None:
        parser.error(
            "--allow-remote needs --public-url: the address other machines use to reach the "
            f"demo, e.g. --public-url http://192.168.1.20:{args.port} (without it, WeChat's "
            "pages would send a phone to this machine's loopback address, the phone itself)"
        )
    if (args.ip_allowlist or args.js_domain) and not args.strict:
        parser.error("--ip-allowlist and --js-domain are strict-mode settings: add --strict")
    if args.redis_url is not None:
        try:
            check_redis_url(args.redis_url)  # what the middleware checks, before any side effect
        except ValueError as exc:
            parser.error(_as_flag(str(exc)))

    def start() -> Starlette:
        public_url = args.public_url or _origin(args.host, args.port)
        _log_logins()
        try:
            app = create_demo_app(
                public_url=public_url,
                auto_approve=args.auto_approve,
                allow_remote=args.allow_remote,
                redis_url=args.redis_url,
                strict=args.strict,
                ip_allowlist=args.ip_allowlist,
                js_domains=args.js_domain,
                second_account=args.second_account,
                wecom=args.wecom,
            )
        except ValueError as exc:  # ConfigurationError included: a bad --public-url or --redis-url
            parser.error(_as_flag(str(exc)))
        banner_text = banner(
            public_url.rstrip("/"),
            auto_approve=args.auto_approve,
            redis_url=args.redis_url,
            strict=app.state.emulator.go_live.describe() if args.strict else None,
            second_account=args.second_account,
            wecom=args.wecom,
        )
        print(banner_text, flush=True)
        if args.redis_url is not None:
            _check_redis(args.redis_url)
        return app

    return serve(parser, args, "demo", start)


def relay_banner(
    public_url: str, relay_url: str, site_urls: Sequence[str], *, auto_approve: bool, redis: str
) -> str:
    """What the relay demo serves where (ASCII only: the terminal's encoding is unknown)."""
    mode = (
        "auto-approve: logins succeed at once as the default persona (xiaoming)"
        if auto_approve
        else "consent page: choose a persona, then press Allow"
    )
    return "\n".join(
        [
            "wxauth-middleware relay demo: one relay, two sites, WeChat emulated inside",
            *(f"  Site: {url}/" for url in site_urls),
            '    open one and press "Browse as WeChat"; each site has its own session',
            f"  Relay (the only registered domain): {relay_url}  (paths /wxauth/relay/...)",
            f"  WeChat emulator (not the real WeChat): {public_url}{EMULATOR_PREFIX}/  [{mode}]",
            f"  The relay's Redis: {redis}.",
            '  The relay logs each step of each login below ("wxauth relay ...").',
            "  Press Ctrl+C to stop.",
        ]
    )


def _serve_relay(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """`--relay`: the relay demo, with the Redis it needs (given, or a private one)."""
    mixed = [
        flag
        for flag, given in (
            ("--public-url", args.public_url is not None),
            ("--allow-remote", args.allow_remote),
            ("--strict", args.strict or bool(args.ip_allowlist or args.js_domain)),
            ("--second-account", args.second_account is not None),
            ("--wecom", args.wecom),
        )
        if given
    ]
    if mixed:
        parser.error(
            f"--relay does not combine with {', '.join(mixed)}: the relay demo runs on this "
            "machine's *.localhost names only, with one account"
        )
    program = None
    if args.redis_url is not None:
        try:
            check_redis_url(args.redis_url)  # what the relay checks, before any side effect
        except ValueError as exc:
            parser.error(_as_flag(str(exc)))
    else:
        program = redis_server_program()
        if program is None:
            parser.error(
                "--relay needs Redis for the relay's records, and redis-server is not on "
                f"PATH: {REDIS_INSTALL_HINT}"
            )
    private = PrivateRedis(program) if program is not None else None

    def start() -> Starlette:
        public_url = _origin(args.host, args.port)
        _log_logins()
        redis_url = args.redis_url
        described = redacted_url(redis_url) if redis_url else ""
        if private is not None:
            try:
                redis_url = private.start()
            except RuntimeError as exc:
                parser.error(f"{exc}; or give --redis-url redis://HOST:PORT/DB")
            described = f"a private redis-server at {redis_url}, stopped at exit"
        try:
            app = create_relay_demo(
                public_url=public_url,
                redis_url=redis_url,
                auto_approve=args.auto_approve,
                # At the server's shutdown: uvicorn then ends the process with the signal
                # that stopped it, before any `finally` of ours runs.
                at_shutdown=None if private is None else private.close,
            )
        except ValueError as exc:  # ConfigurationError included: a bad --redis-url
            parser.error(_as_flag(str(exc)))
        print(
            relay_banner(
                public_url,
                app.state.relay_url,
                list(app.state.site_urls.values()),
                auto_approve=args.auto_approve,
                redis=described,
            ),
            flush=True,
        )
        if args.redis_url is not None:
            _check_redis(args.redis_url)
        return app

    try:
        return serve(parser, args, "demo", start)
    finally:  # the server did not start, or stopped without a signal
        if private is not None:
            private.close()


if __name__ == "__main__":
    sys.exit(main())
