"""The cost of a page with a QR code, per view, in process (ASGI, asyncio): the CPU spent in
the event loop's thread (what holds up every other visitor) and in the whole process (worker
threads included), for a desktop browser's views of the scan page (a new code each view) and
of the "open in WeChat" page (other_browsers="refuse") with a short address, a 1 KB `next`
(`/wxauth/login?next=...`) and a 2 KB query.

    python bench/qr_pages.py [--quick] [--views N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

import httpx
from _apps import ours
from _common import CHROME_UA, machine_lines

from wxauth_middleware import WeChatAuthMiddleware


def _middleware(policy: str) -> WeChatAuthMiddleware:
    # Nothing listens on port 9: no view here calls WeChat.
    return ours("http://127.0.0.1:9", other_browsers=policy)


CASES = {
    "scan page (new code each view)": ("scan", lambda i: "/page"),
    "refuse, short address": ("refuse", lambda i: f"/page/{i}"),
    "refuse, login?next= of 1 KB": ("refuse", lambda i: f"/wxauth/login?next=/{i}-" + "n" * 1000),
    "refuse, 2 KB query": ("refuse", lambda i: f"/page?v={i}&" + "q=1&" * 500),
}


async def _measure(policy: str, path: object, views: int) -> tuple[float, float, int]:
    """Median ms of CPU per view in this (the loop's) thread, and in the process; status."""
    middleware = _middleware(policy)
    transport = httpx.ASGITransport(app=middleware)
    loop_ms, process_ms, status = [], [], 0
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://example.com",
        headers={"user-agent": CHROME_UA, "accept": "text/html"},
    ) as client:
        for i in range(views):
            url = path(i)  # type: ignore[operator]
            thread0, process0 = time.thread_time(), time.process_time()
            response = await client.get(url)
            loop_ms.append((time.thread_time() - thread0) * 1000)
            process_ms.append((time.process_time() - process0) * 1000)
            status = response.status_code
    await middleware.aclose()
    return statistics.median(loop_ms), statistics.median(process_ms), status


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    parser.add_argument("--views", type=int, default=200, help="views per case")
    args = parser.parse_args(argv)
    views = 10 if args.quick else args.views
    print("\n".join(machine_lines()))
    print(f"{'case':<34} {'status':>6} {'loop ms/view':>13} {'process ms/view':>16}")
    for name, (policy, path) in CASES.items():
        loop_ms, process_ms, status = await _measure(policy, path, views)
        print(f"{name:<34} {status:>6} {loop_ms:>13.2f} {process_ms:>16.2f}")
        if status not in (200, 403):
            print(f"unexpected status {status} for {name}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
