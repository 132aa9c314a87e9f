"""redis-py for the session store: checking `redis_url`, the clients, and running the
`StoreCommands` the store's flows yield.

redis-py is an optional dependency (`wxauth-middleware[redis]`): it is imported only here, and
only when a store is configured.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .effects import StoreCommands
from .errors import ConfigurationError, StoreUnavailable

if TYPE_CHECKING:
    import redis
    import redis.asyncio

__all__ = ["async_redis_client", "check_redis_url", "redis_client", "run_async", "run_sync"]

logger = logging.getLogger("wxauth_middleware")
# Seconds a Redis command may take: a store that does not answer fails the request clearly
# instead of holding it (the URL's own socket_timeout=... wins).
_REDIS_TIMEOUT = 2.0


def check_redis_url(url: object) -> str:
    """`url` if it is a Redis URL redis-py can use; a ConfigurationError saying what to fix."""
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigurationError(
            f"redis_url must be a redis://, rediss:// or unix:// URL, not {url!r} "
            "(e.g. 'redis://127.0.0.1:6379/0')."
        )
    try:
        import redis
    except ImportError:
        raise ConfigurationError(
            "redis_url needs redis-py: pip install 'wxauth-middleware[redis]'"
        ) from None
    try:
        redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigurationError(f"redis_url is not a valid Redis URL: {exc}") from None
    return url


def _client_options() -> dict[str, Any]:
    from redis.backoff import NoBackoff

    # One retry of a command whose pooled connection died (Redis restarted), at once; a Redis
    # that is down fails the request in about one timeout, not after backoffs.
    return {
        "socket_timeout": _REDIS_TIMEOUT,
        "socket_connect_timeout": _REDIS_TIMEOUT,
        "health_check_interval": 30,
        "_retry": NoBackoff(),
    }


def redis_client(url: str) -> redis.Redis:
    import redis
    from redis.retry import Retry

    options = _client_options()
    return redis.Redis.from_url(url, retry=Retry(options.pop("_retry"), 1), **options)


def async_redis_client(url: str) -> redis.asyncio.Redis:
    import redis.asyncio
    from redis.asyncio.retry import Retry

    options = _client_options()
    return redis.asyncio.Redis.from_url(url, retry=Retry(options.pop("_retry"), 1), **options)


def run_sync(client: redis.Redis, effect: StoreCommands) -> list[Any]:
    import redis

    try:
        if len(effect.commands) == 1:
            return [client.execute_command(*effect.commands[0])]  # type: ignore[no-untyped-call]
        with client.pipeline(transaction=True) as pipe:
            for command in effect.commands:
                pipe.execute_command(*command)  # type: ignore[no-untyped-call]
            return list(pipe.execute())
    except redis.RedisError as exc:
        raise _unavailable(exc) from None


async def run_async(client: redis.asyncio.Redis, effect: StoreCommands) -> list[Any]:
    import redis

    try:
        if len(effect.commands) == 1:
            return [await client.execute_command(*effect.commands[0])]  # type: ignore[no-untyped-call]
        async with client.pipeline(transaction=True) as pipe:
            for command in effect.commands:
                pipe.execute_command(*command)
            return list(await pipe.execute())
    except redis.RedisError as exc:
        raise _unavailable(exc) from None


def _unavailable(exc: Exception) -> StoreUnavailable:
    # The message names the failure, never the URL (it may hold a password).
    logger.warning("wxauth: the session store failed: %s: %s", type(exc).__name__, exc)
    return StoreUnavailable(f"the session store (Redis) failed: {type(exc).__name__}")
