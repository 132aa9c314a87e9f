"""Whether the emulator and the Redis the middleware was given accept a connection, said in
the log (a warning, never a refusal to start: Redis may come up later, the emulator is
started by hand): at startup, and for the emulator again as the first login starts.

The checks (a TCP connection, nothing more) run in a background thread, so that no
server's startup waits on them, and give the server a few seconds to start listening (the
demo serves the emulator itself, on its own port)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from .config import Config
from .startup import is_loopback

__all__ = ["ReachabilityCheck"]

logger = logging.getLogger("wxauth_middleware")

# How long a check keeps trying (the server's own startup may be under way).
PATIENCE_S = 5.0
_CONNECT_TIMEOUT_S = 1.0


class ReachabilityCheck:
    """Says in the log when the emulator (`authorize_url`/`api_base_url` on this machine)
    or the session store (`redis_url`) does not accept a connection: at startup, and for the
    emulator once more at the first login, when a visitor is about to be sent there."""

    def __init__(self, config: Config, *, patience: float = PATIENCE_S) -> None:
        self._patience = patience
        self._emulators = _loopback_origins(config.authorize_url, config.api_base_url)
        self._redis = _redis_address(config.redis_url) if config.redis_url else None
        self._first_login_pending = bool(self._emulators)
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def at_startup(self) -> None:
        targets: list[tuple[str, Callable[[str], str]]] = [
            (origin, _emulator_advice) for origin in self._emulators
        ]
        if self._redis is not None:
            targets.append((self._redis, _redis_advice))
        if targets:
            self._in_background(targets, self._patience)

    def at_first_login(self) -> None:
        """Called as a login starts: the first one checks the emulator again, at once."""
        if not self._first_login_pending:
            return
        with self._lock:
            if not self._first_login_pending:
                return
            self._first_login_pending = False
        self._in_background([(o, _first_login_advice) for o in self._emulators], 0.0)

    def _in_background(
        self, targets: list[tuple[str, Callable[[str], str]]], patience: float
    ) -> None:
        thread = threading.Thread(
            target=_check, args=(targets, patience), name="wxauth-reachability", daemon=True
        )
        self.threads.append(thread)
        thread.start()


def _check(targets: list[tuple[str, Callable[[str], str]]], patience: float) -> None:
    pending = dict(targets)
    deadline = time.monotonic() + patience
    while True:
        pending = {t: advice for t, advice in pending.items() if not _answers(t)}
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    for target, advice in pending.items():
        logger.warning("%s", advice(target))


def _emulator_advice(origin: str) -> str:
    return (
        f"wxauth: nothing answers at {origin} (authorize_url/api_base_url): is the WeChat "
        "emulator running? Start it with `python -m wxauth_middleware.emulator` (port "
        "8400 by default). Until it answers, visitors sent there get their browser's own "
        "error page."
    )


def _first_login_advice(origin: str) -> str:
    return (
        f"wxauth: a login is starting, but nothing answers at {origin} (authorize_url): "
        "the visitor's browser will show its own error page. Start the WeChat emulator "
        "(`python -m wxauth_middleware.emulator`), or point authorize_url and api_base_url "
        "at the one that runs."
    )


def _redis_advice(address: str) -> str:
    return (
        f"wxauth: the session store does not answer at {address} (redis_url): visitors "
        "with a session will get a 503 page until it does. Start Redis, or check redis_url."
    )


def _loopback_origins(*urls: str) -> list[str]:
    origins: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        if parts.hostname and is_loopback(parts.hostname):
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in origins:
                origins.append(origin)
    return origins


def _redis_address(url: str) -> str:
    """Where `redis_url` connects first, without its password: host:port, or unix:path."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return "unix:" + unquote(parts.path)
    default = 26379 if parts.scheme.startswith("redis+sentinel") else 6379
    first = parts.netloc.rpartition("@")[2].split(",")[0]
    host, _, port = first.rpartition(":") if first.count(":") == 1 else (first, "", "")
    return f"{host or first}:{port or default}"


def _answers(target: str) -> bool:
    """Whether something accepts a connection at `target` (an origin, host:port or
    unix:path)."""
    try:
        if target.startswith("unix:"):
            with socket.socket(socket.AF_UNIX) as unix:
                unix.settimeout(_CONNECT_TIMEOUT_S)
                unix.connect(target[len("unix:") :])
            return True
        if "://" in target:
            parts = urlsplit(target)
            host = parts.hostname or ""
            port = parts.port or (443 if parts.scheme == "https" else 80)
        else:
            host, _, port_text = target.rpartition(":")
            port = int(port_text)
        with socket.create_connection((host.strip("[]"), port), timeout=_CONNECT_TIMEOUT_S):
            return True
    except (OSError, ValueError):
        return False
