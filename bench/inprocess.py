"""In-process cost per request of the middleware, against a bare app and its peers.

    python bench/inprocess.py            # full run, about 1 minute
    python bench/inprocess.py --quick    # smoke run, a few seconds

ASGI: every stack is called as `await app(scope, receive, send)` in a tight loop on one event
loop, with a realistic browser scope (copied per call, since middleware writes to it) and
trivial receive/send coroutines. WSGI: `app(environ, start_response)` with the body iterated
and closed, as a server does. Each case runs in batches of about `--batch-ms` milliseconds;
rounds are interleaved across the cases (the order rotates every round) and the figure per
case is the median over rounds of the batch's mean time per request. The overhead is the
median over rounds of (case - baseline) within the same round, so slow drifts of a shared
machine cancel out. Every case is checked first (status code, user seen by the app), so a
broken cookie cannot make a case fast by taking another path.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from _apps import (
    asgi_app,
    flask_app,
    flask_session_cookie,
    ours_asgi,
    starlette_session_cookie,
    wsgi_app,
)
from _common import (
    CHROME_UA,
    WECHAT_UA,
    asgi_scope,
    bare_asgi_app,
    bare_wsgi_app,
    machine_lines,
    median,
    percentile,
    print_table,
    replay_cookie_header,
    session_cookie_value,
    wsgi_batch,
    wsgi_environ,
    wsgi_status,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wxauth_middleware import WeChatAuthWSGIMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

REPLAY_STATE = "0123456789abcdef0123456789abcdef"


@dataclass
class Case:
    name: str
    baseline: str | None  # the case whose time this one's overhead is measured against
    expect_status: int
    results_ns: list[float] = field(default_factory=list)  # mean ns/request, one per round


# -- ASGI -----------------------------------------------------------------------------------


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Message) -> None:
    return None


@dataclass
class AsgiCase(Case):
    app: ASGIApp = bare_asgi_app
    scope: dict[str, Any] = field(default_factory=dict)
    # What the innermost app must see, checked once: key in the scope -> test on its value.
    check: Callable[[Scope], bool] | None = None
    check_app: ASGIApp | None = None


def _probe(seen: list[Scope]) -> ASGIApp:
    async def probe(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await bare_asgi_app(scope, receive, send)

    return probe


async def _asgi_status(app: ASGIApp, scope: Scope) -> int:
    statuses: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(dict(scope), _receive, send)
    return statuses[0]


async def _asgi_batch(app: ASGIApp, scope: dict[str, Any], n: int) -> int:
    receive, send = _receive, _discard
    start = time.perf_counter_ns()
    for _ in range(n):
        await app(scope.copy(), receive, send)
    return time.perf_counter_ns() - start


async def build_asgi_cases() -> list[AsgiCase]:
    config = ours_asgi().config
    cookie = f"{config.session_cookie}={session_cookie_value(config)}"
    starlette_cookie = f"session={await starlette_session_cookie()}"
    replay = replay_cookie_header(config, REPLAY_STATE)
    replay_query = f"code=spentcode&state={REPLAY_STATE}"

    def user_set(scope: Scope) -> bool:
        return scope.get("wechat_user") is not None

    def no_user(scope: Scope) -> bool:
        return "wechat_user" in scope and scope["wechat_user"] is None

    def session_user(scope: Scope) -> bool:
        return "user" in scope.get("session", {})

    def auth_user(scope: Scope) -> bool:
        user = scope.get("user")
        return user is not None and bool(user.is_authenticated)

    Check = Callable[[Scope], bool] | None
    specs: list[tuple[str, str | None, int, str, dict[str, Any], Check]] = [
        ("asgi bare app", None, 200, "bare", asgi_scope(user_agent=CHROME_UA), None),
        (
            "ours: pass-through (desktop, no cookie)",
            "asgi bare app",
            200,
            "ours",
            asgi_scope(user_agent=CHROME_UA),
            no_user,
        ),
        (
            "ours: logged-in (WeChat, session cookie)",
            "asgi bare app",
            200,
            "ours",
            asgi_scope(user_agent=WECHAT_UA, cookie=cookie),
            user_set,
        ),
        (
            "ours: anonymous WeChat page -> 302",
            "asgi bare app",
            302,
            "ours",
            asgi_scope(user_agent=WECHAT_UA),
            None,
        ),
        (
            "ours: callback replay -> 302",
            "asgi bare app",
            302,
            "ours",
            asgi_scope("/wxauth/callback", user_agent=WECHAT_UA, cookie=replay, query=replay_query),
            None,
        ),
        (
            "ours + AuthenticationMiddleware: logged-in",
            "asgi bare app",
            200,
            "ours+auth",
            asgi_scope(user_agent=WECHAT_UA, cookie=cookie),
            auth_user,
        ),
        (
            "starlette SessionMiddleware: no cookie",
            "asgi bare app",
            200,
            "session",
            asgi_scope(user_agent=CHROME_UA),
            None,
        ),
        (
            "starlette SessionMiddleware: logged-in",
            "asgi bare app",
            200,
            "session",
            asgi_scope(user_agent=WECHAT_UA, cookie=starlette_cookie),
            session_user,
        ),
        (
            "SessionMiddleware + AuthenticationMiddleware: logged-in",
            "asgi bare app",
            200,
            "session+auth",
            asgi_scope(user_agent=WECHAT_UA, cookie=starlette_cookie),
            auth_user,
        ),
    ]
    cases = []
    for name, baseline, status, stack, scope, check in specs:
        case = AsgiCase(name, baseline, status, app=asgi_app(stack), scope=scope)
        if check is not None:
            seen: list[Scope] = []
            case.check = check
            case.check_app = asgi_app(stack, _probe(seen))
            await _asgi_status(case.check_app, scope)
            if not seen or not check(seen[-1]):
                raise SystemExit(f"check failed for {name!r}: the app did not see what it should")
        got = await _asgi_status(case.app, scope)
        if got != status:
            raise SystemExit(f"check failed for {name!r}: status {got}, expected {status}")
        cases.append(case)
    return cases


async def run_asgi(cases: list[AsgiCase], rounds: int, batch_ns: int) -> None:
    sizes = {}
    for case in cases:  # calibrate: a batch of about batch_ns
        await _asgi_batch(case.app, case.scope, 200)
        per_call = max(await _asgi_batch(case.app, case.scope, 500) / 500, 50.0)
        sizes[case.name] = max(20, int(batch_ns / per_call))
    for r in range(rounds):
        order = cases[r % len(cases) :] + cases[: r % len(cases)]
        for case in order:
            n = sizes[case.name]
            gc.collect()
            case.results_ns.append(await _asgi_batch(case.app, case.scope, n) / n)


# -- WSGI -----------------------------------------------------------------------------------


@dataclass
class WsgiCase(Case):
    app: WSGIApplication = bare_wsgi_app
    environ: WSGIEnvironment = field(default_factory=dict)


def build_wsgi_cases() -> list[WsgiCase]:
    ours = wsgi_app("ours")
    assert isinstance(ours, WeChatAuthWSGIMiddleware)
    cookie = f"wxauth_session={session_cookie_value(ours.config)}"
    replay = replay_cookie_header(ours.config, REPLAY_STATE)
    replay_query = f"code=spentcode&state={REPLAY_STATE}"
    flask_session = flask_app("session")
    flask_cookie = f"session={flask_session_cookie(flask_session)}"
    specs: list[tuple[str, str | None, int, WSGIApplication, WSGIEnvironment, bytes | None]] = [
        ("wsgi bare app", None, 200, bare_wsgi_app, wsgi_environ(user_agent=CHROME_UA), b"ok"),
        (
            "ours: pass-through (desktop, no cookie)",
            "wsgi bare app",
            200,
            ours,
            wsgi_environ(user_agent=CHROME_UA),
            b"ok",
        ),
        (
            "ours: logged-in (WeChat, session cookie)",
            "wsgi bare app",
            200,
            ours,
            wsgi_environ(user_agent=WECHAT_UA, cookie=cookie),
            b"ok",
        ),
        (
            "ours: anonymous WeChat page -> 302",
            "wsgi bare app",
            302,
            ours,
            wsgi_environ(user_agent=WECHAT_UA),
            None,
        ),
        (
            "ours: callback replay -> 302",
            "wsgi bare app",
            302,
            ours,
            wsgi_environ(
                "/wxauth/callback", user_agent=WECHAT_UA, cookie=replay, query=replay_query
            ),
            None,
        ),
        ("flask bare app", None, 200, flask_app("bare"), wsgi_environ(user_agent=CHROME_UA), b"ok"),
        (
            "flask session: logged-in (reads session['user'])",
            "flask bare app",
            200,
            flask_session,
            wsgi_environ(user_agent=WECHAT_UA, cookie=flask_cookie),
            b"ok",
        ),
        (
            "flask + ours: logged-in (reads the WeChat user)",
            "flask bare app",
            200,
            flask_app("ours"),
            wsgi_environ(user_agent=WECHAT_UA, cookie=cookie),
            b"ok",
        ),
    ]
    cases = []
    for name, baseline, status, app, environ, body in specs:
        got, data = wsgi_status(app, environ)
        if got != status or (body is not None and data != body):
            raise SystemExit(f"check failed for {name!r}: {got} {data[:80]!r}")
        cases.append(WsgiCase(name, baseline, status, app=app, environ=environ))
    # The logged-in WSGI case around the bare callable must see the user too.
    seen: list[WSGIEnvironment] = []

    def probe(environ: WSGIEnvironment, start_response: Any) -> Iterable[bytes]:
        seen.append(environ)
        return bare_wsgi_app(environ, start_response)

    probe_ours = WeChatAuthWSGIMiddleware(probe, **{**_wsgi_options(ours)})
    wsgi_status(probe_ours, cases[2].environ)
    if not seen or seen[-1].get("wechat_user") is None:
        raise SystemExit("check failed: the WSGI logged-in case saw no user")
    return cases


def _wsgi_options(ours: WeChatAuthWSGIMiddleware) -> dict[str, Any]:
    config = ours.config
    return {
        "app_id": config.app_id,
        "app_secret": config.app_secret,
        "secret_key": config.secret_key,
        "scope": config.scope,
    }


def run_wsgi(cases: list[WsgiCase], rounds: int, batch_ns: int) -> None:
    sizes = {}
    for case in cases:
        wsgi_batch(case.app, case.environ, 200)
        per_call = max(wsgi_batch(case.app, case.environ, 500) / 500, 50.0)
        sizes[case.name] = max(20, int(batch_ns / per_call))
    for r in range(rounds):
        order = cases[r % len(cases) :] + cases[: r % len(cases)]
        for case in order:
            n = sizes[case.name]
            gc.collect()
            case.results_ns.append(wsgi_batch(case.app, case.environ, n) / n)


# -- report ---------------------------------------------------------------------------------


def overhead_us(case: Case, by_name: dict[str, Case]) -> float:
    """Median over rounds of (case - baseline) in the same round, in microseconds."""
    if case.baseline is None:
        return 0.0
    base = by_name[case.baseline].results_ns
    return median([c - b for c, b in zip(case.results_ns, base, strict=True)]) / 1000


def report(title: str, cases: list[Case]) -> dict[str, float]:
    by_name = {case.name: case for case in cases}
    rows = []
    overheads: dict[str, float] = {}
    for case in cases:
        values = case.results_ns
        over = overhead_us(case, by_name)
        overheads[case.name] = over
        rows.append(
            [
                case.name,
                case.expect_status,
                f"{median(values) / 1000:.2f}",
                f"{percentile(values, 25) / 1000:.2f}-{percentile(values, 75) / 1000:.2f}",
                "-" if case.baseline is None else f"{over:.2f}",
            ]
        )
    print_table(
        ["case", "status", "µs/request (median)", "IQR over rounds", "overhead µs"], rows, title
    )
    return overheads


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, help="rounds per case (default 101, quick 5)")
    parser.add_argument("--batch-ms", type=float, help="batch length (default 12, quick 5)")
    parser.add_argument("--only", choices=["asgi", "wsgi"], help="one adapter only")
    args = parser.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 101)
    batch_ns = int((args.batch_ms or (5.0 if args.quick else 12.0)) * 1e6)

    print("wxauth-middleware in-process benchmark")
    for line in machine_lines():
        print("  " + line)
    print(f"  rounds={rounds}, batch={batch_ns / 1e6:.0f} ms; figures are medians over rounds")

    if args.only != "wsgi":
        asgi_cases = asyncio.run(_asgi_main(rounds, batch_ns))
        o = report("ASGI (await app(scope, receive, send))", list(asgi_cases))
        ours_in = o["ours: logged-in (WeChat, session cookie)"]
        peer_in = o["starlette SessionMiddleware: logged-in"]
        ours_auth = o["ours + AuthenticationMiddleware: logged-in"]
        peer_auth = o["SessionMiddleware + AuthenticationMiddleware: logged-in"]
        passthrough = o["ours: pass-through (desktop, no cookie)"]
        peer_empty = o["starlette SessionMiddleware: no cookie"]
        print_table(
            ["ratio (overheads over the bare app)", "value", "target", "verdict"],
            [
                [
                    "ours logged-in / SessionMiddleware logged-in",
                    ratio(ours_in, peer_in),
                    "<= 0.5x",
                    verdict(ours_in <= 0.5 * peer_in),
                ],
                [
                    "ours+Auth logged-in / Session+Auth logged-in",
                    ratio(ours_auth, peer_auth),
                    "-",
                    "-",
                ],
                [
                    "ours pass-through / SessionMiddleware no cookie",
                    ratio(passthrough, peer_empty),
                    "-",
                    "-",
                ],
                [
                    "ours pass-through overhead (µs)",
                    f"{passthrough:.2f}",
                    "< 1.5",
                    verdict(passthrough < 1.5),
                ],
            ],
            "ASGI ratios",
        )

    if args.only != "asgi":
        wsgi_cases = build_wsgi_cases()
        run_wsgi(wsgi_cases, rounds, batch_ns)
        o = report(
            "WSGI (app(environ, start_response), body iterated and closed)", list(wsgi_cases)
        )
        ours_flask = o["flask + ours: logged-in (reads the WeChat user)"]
        flask_session = o["flask session: logged-in (reads session['user'])"]
        print_table(
            ["ratio (overheads)", "value"],
            [
                [
                    "ours logged-in around Flask / Flask session over bare Flask",
                    ratio(ours_flask, flask_session),
                ],
                [
                    "ours logged-in around the bare callable / Flask session over bare Flask",
                    ratio(o["ours: logged-in (WeChat, session cookie)"], flask_session),
                ],
                [
                    "ours pass-through overhead (µs, around the bare callable)",
                    f"{o['ours: pass-through (desktop, no cookie)']:.2f}",
                ],
            ],
            "WSGI ratios",
        )
    return 0


async def _asgi_main(rounds: int, batch_ns: int) -> list[AsgiCase]:
    cases = await build_asgi_cases()
    await run_asgi(cases, rounds, batch_ns)
    return cases


if __name__ == "__main__":
    sys.exit(main())
