"""``python -m wxauth_middleware.emulator``: serve the WeChat emulator over HTTP."""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

from .app import (
    DEFAULT_APP_ID,
    DEFAULT_APP_SECRET,
    DEFAULT_WEBSITE_APP_ID,
    DEFAULT_WEBSITE_APP_SECRET,
    WeChatEmulator,
    is_loopback_host,
)
from .personas import DEFAULT_PERSONAS
from .platform_state import parse_platform
from .wecom_state import DEFAULT_AGENT_ID, DEFAULT_CORP_ID, DEFAULT_CORP_SECRET, WeComCorp

_DEFAULT_DOMAINS = ("127.0.0.1", "localhost")


def server_parser(
    prog: str, description: str, *, port: int, auto_approve: str
) -> argparse.ArgumentParser:
    """A command line with what every server command here takes: --host, --port (default
    `port`) and --auto-approve (helped by `auto_approve`)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind (default: %(default)s); a non-loopback one needs --allow-remote",
    )
    parser.add_argument("--port", type=int, default=port, help="port (default: %(default)s)")
    parser.add_argument("--auto-approve", action="store_true", help=auto_approve)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = server_parser(
        "python -m wxauth_middleware.emulator",
        "Serve a local emulator of WeChat's web-page authorization (the authorize page, the "
        "website QR-code login page, the /sns/* APIs, the account's /cgi-bin/* token and "
        "ticket APIs and a JS-SDK stand-in) for offline development and tests. It is not "
        "the real WeChat.",
        port=8400,
        auto_approve="approve every authorization and QR-code login at once as the default "
        "persona (for scripts), instead of showing the consent or QR-code page",
    )
    parser.add_argument(
        "--app-id",
        default=DEFAULT_APP_ID,
        help="the Official Account's AppID (default: %(default)s)",
    )
    parser.add_argument(
        "--app-secret",
        default=DEFAULT_APP_SECRET,
        help="its AppSecret (default: %(default)s)",
    )
    parser.add_argument(
        "--account",
        action="append",
        type=_account,
        default=[],
        metavar="APPID:SECRET",
        help="register another Official Account (repeatable; --app-id/--app-secret stay the "
        "first): a persona has another openid in each account, one unionid in all",
    )
    parser.add_argument(
        "--website-app-id",
        default=DEFAULT_WEBSITE_APP_ID,
        help="the Open-Platform website app's AppID, for QR-code login at /connect/qrconnect "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--website-app-secret",
        default=DEFAULT_WEBSITE_APP_SECRET,
        help="the website app's AppSecret (default: %(default)s)",
    )
    parser.add_argument(
        "--no-website-app",
        action="store_true",
        help="run without a website app: /connect/qrconnect refuses every appid",
    )
    parser.add_argument(
        "--domain",
        action="append",
        metavar="HOST",
        help="a registered web authorization domain: the hostname redirect_uri must use, "
        "port ignored; repeat for several (default: 127.0.0.1 and localhost)",
    )
    parser.add_argument(
        "--persona",
        choices=[p.key for p in DEFAULT_PERSONAS],
        default=DEFAULT_PERSONAS[0].key,
        help="the default persona: used by --auto-approve and preselected on the consent and "
        "QR-code pages (default: %(default)s)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="delay every API answer by this many seconds (default: %(default)s)",
    )
    wecom = parser.add_argument_group(
        "WeCom", "play a WeCom corp beside the Official Accounts (with --corp-id)"
    )
    wecom.add_argument(
        "--corp-id",
        metavar="ID",
        help=f"the corp's CorpID (e.g. {DEFAULT_CORP_ID}); turns WeCom on",
    )
    wecom.add_argument(
        "--agent-id",
        action="append",
        type=int,
        metavar="N",
        help=f"an app's AgentId (repeatable, each with its --corp-secret; default: "
        f"{DEFAULT_AGENT_ID})",
    )
    wecom.add_argument(
        "--corp-secret",
        action="append",
        metavar="SECRET",
        help=f"that app's Secret, in the order of --agent-id (default: {DEFAULT_CORP_SECRET})",
    )
    wecom.add_argument(
        "--wecom-domain",
        action="append",
        metavar="HOST[:PORT]",
        help="the apps' trusted domain, matched exactly, port included, as WeCom "
        "does; repeatable (default: 127.0.0.1 and localhost on any port)",
    )
    wecom.add_argument(
        "--wecom-trusted-ip",
        action="append",
        metavar="ADDRESS",
        help="an address or network of the apps' trusted IPs: API calls from elsewhere get 60020; "
        "repeatable (default: no list, every caller answered)",
    )
    parser.add_argument(
        "--platform",
        metavar="COMPONENT_APPID:SECRET:TOKEN:AESKEY",
        help="play a third-party platform (第三方平台) the accounts may authorize: its AppID, "
        "AppSecret, message token and 43-character EncodingAESKey",
    )
    parser.add_argument(
        "--platform-events-url",
        metavar="URL",
        help="where the platform's encrypted events are pushed (the middleware's "
        "platform_events_path): a component_verify_ticket at start, every 10 minutes and on "
        "POST /_emulator/platform/push",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="answer clients on other machines, and allow binding a non-loopback --host; "
        "only on a trusted network",
    )
    add_go_live_arguments(parser)
    return parser


def add_go_live_arguments(parser: argparse.ArgumentParser) -> None:
    """The account's go-live settings (each off unless given), as WeChat enforces them live."""
    group = parser.add_argument_group(
        "go-live settings",
        "what a live Official Account enforces; each is off unless given",
    )
    group.add_argument(
        "--ip-allowlist",
        action="append",
        metavar="ADDR",
        help="turn the IP allow-list (IP白名单) on with this address or network (repeatable): "
        "stable_token and token calls from any other address get 40164",
    )
    group.add_argument(
        "--js-domain",
        action="append",
        metavar="DOMAIN",
        help="turn the JS接口安全域名 list on with this domain (repeatable; subdomains "
        "included, ports ignored): wx.config on a page elsewhere fails with "
        "config:invalid url domain",
    )
    group.add_argument(
        "--daily-quota",
        type=int,
        metavar="N",
        help="calls of each API a day (Beijing time) before 45009",
    )
    group.add_argument(
        "--minute-quota",
        type=int,
        metavar="N",
        help="calls of each API a minute before 45011",
    )


def _account(value: str) -> tuple[str, str]:
    app_id, sep, secret = value.partition(":")
    if not sep or not app_id or not secret:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not APPID:SECRET (an Official Account's AppID and AppSecret)"
        )
    return app_id, secret


def _corp(args: argparse.Namespace) -> WeComCorp | None:
    """The WeCom corp the command line describes, if any. Raises ValueError saying what to fix."""
    if args.corp_id is None:
        if args.agent_id or args.corp_secret or args.wecom_domain or args.wecom_trusted_ip:
            raise ValueError("the WeCom options need --corp-id")
        return None
    agents = args.agent_id or [DEFAULT_AGENT_ID]
    secrets = args.corp_secret or ([DEFAULT_CORP_SECRET] if args.agent_id is None else [])
    if len(agents) != len(secrets) or len(set(agents)) != len(agents):
        raise ValueError(
            "give one --corp-secret for each --agent-id, in the same order, each agent once"
        )
    try:
        return WeComCorp(
            args.corp_id,
            dict(zip(agents, secrets, strict=True)),
            time.time,
            trusted_domains=args.wecom_domain,
            trusted_ips=args.wecom_trusted_ip,
        )
    except ValueError as exc:
        raise ValueError(f"WeCom: {exc}") from None


def build_emulator(args: argparse.Namespace) -> WeChatEmulator:
    """The emulator the parsed command line describes."""
    emulator = WeChatEmulator(
        app_id=args.app_id,
        app_secret=args.app_secret,
        domains=tuple(args.domain or _DEFAULT_DOMAINS),
        auto_approve=args.auto_approve,
        default_persona=args.persona,
        allow_remote=args.allow_remote,
        website_app_id=None if args.no_website_app else args.website_app_id,
        website_app_secret=None if args.no_website_app else args.website_app_secret,
        ip_allowlist=args.ip_allowlist,
        js_domains=args.js_domain,
        daily_quota=args.daily_quota,
        minute_quota=args.minute_quota,
        accounts=tuple(args.account),
        wecom=_corp(args),
        platform=None if args.platform is None else parse_platform(args.platform),
        platform_events_url=args.platform_events_url,
    )
    if args.platform_events_url is not None and args.platform is None:
        raise ValueError("--platform-events-url needs --platform")
    if args.latency:
        emulator.inject("*", latency=args.latency, times=None)
    return emulator


def banner(
    emulator: WeChatEmulator,
    host: str,
    port: int,
    app_secret: str,
    website_app_secret: str | None = None,
) -> str:
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    mode = "auto-approve" if emulator.auto_approve else "consent page"
    lines = [
        f"WeChat emulator (not the real WeChat) on {base}/  [{mode}]",
        f"  appid:  {emulator.app_id}",
        f"  secret: {app_secret}",
        "  middleware options:",
        f"    authorize_url={base}/connect/oauth2/authorize",
        f"    api_base_url={base}",
    ]
    for more in emulator.official_app_ids[1:]:
        lines.insert(3, f"  another Official Account (--account): {more}")
    if emulator.wecom is not None:
        corp = emulator.wecom
        trusted = ", ".join(corp.trusted_domains or ("127.0.0.1 and localhost, any port",))
        lines += [
            "  WeCom corp, for WeComApp(...):",
            f"    corp_id={corp.corp_id}",
            *(f"    agent_id={agent} secret={secret}" for agent, secret in corp.agents.items()),
            f"    trusted domain: {trusted}",
            f"    sso_url={base}/wwlogin/sso/login",
        ]
    platform = emulator.platform
    if platform is not None:
        lines += [
            f"  third-party platform (--platform): component_appid={platform.component_appid}",
            f"    events pushed to: {platform.events_url or '(nowhere: --platform-events-url)'}",
        ]
    if emulator.website_app_id is None:
        lines.append("  website QR-code login: disabled (--no-website-app)")
    else:
        lines += [
            "  website app (QR-code login for desktop browsers):",
            f"    website_app_id={emulator.website_app_id}",
            f"    website_app_secret={website_app_secret}",
            f"    qrconnect_url={base}/connect/qrconnect",
        ]
    settings = emulator.go_live.describe()
    lines.append("  go-live settings:" + ("" if settings else " off (a smooth start)"))
    lines += [f"    {line}" for line in settings]
    return "\n".join(lines)


def listen_error(host: str, port: int) -> str | None:
    """Why a server could not listen on `host`:`port`, in one sentence naming the flag to
    change, or None when it can. Checked before the banner, so nothing says "Open ..." first."""
    if not 0 < port < 65536:
        return f"--port {port} is not a TCP port: use one from 1 to 65535"
    host = host.strip("[]")
    # The socket uvicorn would open: an IPv6 one for an IPv6 address, SO_REUSEADDR set.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reason = exc.strerror or str(exc)
        return f"cannot listen on {shown} ({reason}): choose another --port, or --host"
    return None


def exit_with(prog: str, message: str) -> int:
    """Print `message` as the one line of a usage error; the exit status argparse uses (2)."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_server_args(
        parser,
        argv,
        "; the emulator hands out logins to anyone who asks, so add --allow-remote if you "
        "really mean it",
    )
    if args.latency < 0:
        parser.error("--latency must be >= 0")
    try:
        emulator = build_emulator(args)
    except ValueError as exc:
        parser.error(str(exc))

    def start() -> WeChatEmulator:
        print(
            banner(emulator, args.host, args.port, args.app_secret, emulator.website_app_secret),
            flush=True,
        )
        return emulator

    return serve(parser, args, "emulator", start)


def parse_server_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, risk: str
) -> argparse.Namespace:
    """`argv` parsed; a usage error for a non-loopback --host without --allow-remote, the
    message going on with `risk` (what serving other machines would expose)."""
    args = parser.parse_args(argv)
    if not is_loopback_host(args.host) and not args.allow_remote:
        parser.error(f"--host {args.host} is reachable from other machines{risk}")
    return args


def serve(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    server: str,
    start: Callable[[], Callable[..., Awaitable[None]]],
) -> int:
    """Serve the ASGI app `start` builds (and announces) with uvicorn at --host and --port,
    once uvicorn is installed and the address is free; the exit status."""
    try:
        import uvicorn
    except ImportError:
        print(
            f'The {server} server needs uvicorn: pip install "wxauth-middleware[demo]"',
            file=sys.stderr,
        )
        return 1
    problem = listen_error(args.host, args.port)
    if problem is not None:
        return exit_with(parser.prog, problem)
    app = start()
    uvicorn.run(app, host=args.host.strip("[]"), port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
