"""``python -m wxauth_middleware.demo``: serve the demo site, emulator included, with uvicorn.

    python -m wxauth_middleware.demo [--host H] [--port P] [--auto-approve]
                                     [--public-url URL] [--allow-remote] [--redis-url URL]
                                     [--strict [--ip-allowlist ADDR] [--js-domain DOMAIN]]
                                     [--second-account [HOST]]

Sessions are the middleware's signed cookie by default. ``--redis-url redis://HOST:PORT/DB``
keeps them in that Redis instead (the middleware's ``redis_url`` option; keys under
``wxauth:``, needs redis-py: ``pip install "wxauth-middleware[redis]"``): the cookie holds a
signed id, the demo's "Log out" deletes the stored session, and a duplicate callback is
answered from Redis. A URL that is not a Redis URL is a usage error (exit status 2); a Redis that
does not answer at start is only a warning: the demo then answers 503 to requests that need the
store until Redis is back, as the middleware does in production.

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
from ..redis_client import check_redis_url, redacted_url, redis_client, run_sync
from .app import EMULATOR_PREFIX, SECOND_APP_ID, SECOND_HOST, create_demo_app

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
        "the stored session",
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
    return parser


def _as_flag(message: str) -> str:
    """An option's error message naming the command-line flag ("redis_url ..." -> "--redis-url
    ...")."""
    for option in ("public_url", "redis_url", "second_account"):
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
            )
        except ValueError as exc:  # ConfigurationError included: a bad --public-url or --redis-url
            parser.error(_as_flag(str(exc)))
        banner_text = banner(
            public_url.rstrip("/"),
            auto_approve=args.auto_approve,
            redis_url=args.redis_url,
            strict=app.state.emulator.go_live.describe() if args.strict else None,
            second_account=args.second_account,
        )
        print(banner_text, flush=True)
        if args.redis_url is not None:
            _check_redis(args.redis_url)
        return app

    return serve(parser, args, "demo", start)


if __name__ == "__main__":
    sys.exit(main())
