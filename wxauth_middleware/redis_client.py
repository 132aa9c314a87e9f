"""redis-py for the session store: reading `redis_url`, the clients, and running the
`StoreCommands` the store's flows yield.

`redis_url` names one of three deployments, each with redis-py's own clients (sync and asyncio):

- `redis://[:password@]host:port[/db]`, `rediss://...`, `unix://path`: one server;
- `redis+sentinel://[:password@]host:port[,host:port...]/service_name[/db]`: the primary the
  Sentinels name `service_name`, asked again whenever a connection to it fails, so a failover
  is followed without a restart;
- `redis+cluster://[:password@]host:port[,host:port...]`: a Redis Cluster, any reachable nodes
  as seeds (a cluster has no database number).

The password is the data nodes' (Sentinels are asked without one); query options such as
`?socket_timeout=0.5` apply to every form. No message or log line shows the password.

redis-py is an optional dependency (`wxauth-middleware[redis]`): it is imported only here, and
only when a store is configured.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .effects import StoreCommands
from .errors import ConfigurationError, StoreUnavailable

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.cluster

    AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

__all__ = [
    "SyncClient",
    "async_redis_client",
    "check_redis_url",
    "redacted_url",
    "redis_client",
    "run_async",
    "run_sync",
]

logger = logging.getLogger("wxauth_middleware")
# Seconds a Redis command may take: a store that does not answer fails the request clearly
# instead of holding it (the URL's own socket_timeout=... wins).
_REDIS_TIMEOUT = 2.0
_SERVER_SCHEMES = ("redis", "rediss", "unix")
_DEFAULT_PORTS = {"redis+sentinel": 26379, "redis+cluster": 6379}


# What is between "//" and "@" in a URL: a username, and a password after a colon.
_CREDENTIALS = re.compile(r"//(?P<user>[^/?#@:]*)(?P<password>:[^/?#@]*)?@")


@dataclass(frozen=True)
class _Target:
    """What a `redis_url` names: one server (`url`), a Sentinel service, or a cluster."""

    scheme: str
    url: str = ""
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    # Connection options for the data nodes (password, db, the query's options).
    options: dict[str, Any] = field(default_factory=dict)


def redacted_url(url: str) -> str:
    """`url` with the credentials before its host replaced by `***` (a username is kept when a
    password follows it), for messages and logs: whatever the string, well-formed or not."""
    return _CREDENTIALS.sub(lambda m: f"//{m['user'] + ':' if m['password'] else ''}***@", url)


def check_redis_url(url: object) -> str:
    """`url` if it is a Redis URL redis-py can use; a ConfigurationError saying what to fix,
    without the URL's password."""
    _target(url)
    return url  # type: ignore[return-value]


def _target(url: object) -> _Target:
    scheme = url.partition("://")[0] if isinstance(url, str) and "://" in url else ""
    if not isinstance(url, str) or scheme not in (*_SERVER_SCHEMES, *_DEFAULT_PORTS):
        shown = redacted_url(url) if isinstance(url, str) else url
        raise ConfigurationError(
            f"redis_url must be a redis://, rediss://, unix://, redis+sentinel:// or "
            f"redis+cluster:// URL, not {shown!r} (e.g. 'redis://127.0.0.1:6379/0')."
        )
    try:
        import redis  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "redis_url needs redis-py: pip install 'wxauth-middleware[redis]'"
        ) from None
    try:
        if scheme in _SERVER_SCHEMES:
            options = _options(url)
            return _Target(scheme, url=url, options=options)
        return _multi_node_target(scheme, url)
    except ValueError as exc:
        message = str(exc)
        found = _CREDENTIALS.search(url)
        secret = (found["password"] or found["user"])[1:] if found else ""
        if secret:
            message = message.replace(secret, "***").replace(unquote(secret), "***")
        raise ConfigurationError(f"redis_url is not a valid Redis URL: {message}") from None


def _multi_node_target(scheme: str, url: str) -> _Target:
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    nodes = tuple(_node(node, _DEFAULT_PORTS[scheme]) for node in hosts.split(","))
    path = [segment for segment in parts.path.split("/") if segment]
    service, db = "", ""
    if scheme == "redis+sentinel":
        if not path or len(path) > 2:
            raise ValueError("a redis+sentinel:// URL names the service: host:port/service[/db]")
        service, db = path[0], (path[1] if len(path) == 2 else "")
    elif path:
        raise ValueError("a redis+cluster:// URL has no path: a cluster has no database number")
    # redis-py reads the password, the database and the query's options of a plain URL.
    plain = urlunsplit(("redis", f"{credentials}@{hosts.split(',')[0]}", f"/{db}", parts.query, ""))
    options = _options(plain)
    for key in ("host", "port"):
        options.pop(key, None)
    if scheme == "redis+cluster" and options.pop("db", 0) != 0:
        raise ValueError("a redis+cluster:// URL has no db=: a cluster has no database number")
    return _Target(scheme, nodes=nodes, service=service, options=options)


def _node(node: str, default_port: int) -> tuple[str, int]:
    host, colon, port = node.rpartition(":") if not node.endswith("]") else (node, "", "")
    if not colon:
        host, port = node, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{node!r} is not host:port")
    return host, int(port)


def _options(url: str) -> dict[str, Any]:
    import redis

    options: dict[str, Any] = _untyped(redis.connection.parse_url)(url)
    unknown = set(options) - {
        "host",
        "port",
        "path",
        "username",
        "password",
        "db",
        "connection_class",
        *redis.connection.URL_QUERY_ARGUMENT_PARSERS,
    }
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r}")
    return options


def _untyped(obj: object) -> Any:
    """`obj` as `Any`, for the redis-py calls whose annotations differ between the oldest and
    the newest redis-py the package allows (5.0.1 leaves `Sentinel`, `ClusterNode`, `close`,
    `execute_command`... unannotated and calls `RedisCluster` abstract; 8.x annotates them): so
    one source type-checks against both, with no `type: ignore` right for one and wrong for the
    other. `.ci/run` checks both ends."""
    return obj


def _client_options(target: _Target) -> dict[str, Any]:
    # A Redis that is down fails the request in about one timeout, not after backoffs.
    defaults = {
        "socket_timeout": _REDIS_TIMEOUT,
        "socket_connect_timeout": _REDIS_TIMEOUT,
        "health_check_interval": 30,
    }
    return defaults | {k: v for k, v in target.options.items() if k in defaults}


def _retry(retry_class: Any) -> Any:
    from redis.backoff import NoBackoff

    # One retry of a command whose pooled connection died (Redis restarted), at once.
    return retry_class(_untyped(NoBackoff)(), 1)


def _sentinel_options(options: dict[str, Any]) -> dict[str, Any]:
    # The Sentinels are asked with the URL's timeouts, without the data nodes' password.
    return {k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")}


class SyncClient:
    """The synchronous client of a `redis_url`, made on first use: a cluster's client asks
    the nodes for the slots when it is made, which must fail one request clearly (503),
    not the application's start, and be tried again by the next request."""

    def __init__(self, url: str) -> None:
        self._target = _target(url)
        self._client: redis.Redis | redis.cluster.RedisCluster | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SyncClient {self._target.scheme}>"

    def client(self) -> redis.Redis | redis.cluster.RedisCluster:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make()
        return self._client

    def _make(self) -> redis.Redis | redis.cluster.RedisCluster:
        import redis
        import redis.cluster
        import redis.sentinel
        from redis.retry import Retry

        target = self._target
        options = _client_options(target)
        if target.scheme == "redis+sentinel":
            sentinels = _untyped(redis.sentinel.Sentinel)(
                list(target.nodes), sentinel_kwargs=_sentinel_options(options)
            )
            master: redis.Redis = sentinels.master_for(
                target.service, retry=_retry(Retry), **(target.options | options)
            )
            return master
        if target.scheme == "redis+cluster":
            try:
                cluster: redis.cluster.RedisCluster = _untyped(redis.cluster.RedisCluster)(
                    startup_nodes=[
                        _untyped(redis.cluster.ClusterNode)(h, p) for h, p in target.nodes
                    ],
                    retry=_retry(Retry),
                    **(target.options | options),
                )
                return cluster
            except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
                raise _unavailable(exc) from None
        single: redis.Redis = _untyped(redis.Redis).from_url(
            target.url, retry=_retry(Retry), **options
        )
        return single

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            _untyped(client).close()


def redis_client(url: str) -> SyncClient:
    return SyncClient(url)


def async_redis_client(url: str) -> AsyncClient:
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.asyncio.sentinel
    from redis.asyncio.retry import Retry

    target = _target(url)
    options = _client_options(target)
    if target.scheme == "redis+sentinel":
        sentinels = _untyped(redis.asyncio.sentinel.Sentinel)(
            list(target.nodes), sentinel_kwargs=_sentinel_options(options)
        )
        master: redis.asyncio.Redis = sentinels.master_for(
            target.service, retry=_retry(Retry), **(target.options | options)
        )
        return master
    if target.scheme == "redis+cluster":
        # Made without a connection: the slots are asked for on the first command.
        cluster: redis.asyncio.cluster.RedisCluster = _untyped(redis.asyncio.cluster.RedisCluster)(
            startup_nodes=[redis.asyncio.cluster.ClusterNode(h, p) for h, p in target.nodes],
            retry=_retry(Retry),
            **(target.options | options),
        )
        return cluster
    single: redis.asyncio.Redis = _untyped(redis.asyncio.Redis).from_url(
        target.url, retry=_retry(Retry), **options
    )
    return single


def run_sync(store: SyncClient, effect: StoreCommands) -> list[Any]:
    import redis

    try:
        client = store.client()
        if len(effect.commands) == 1:
            return [_untyped(client).execute_command(*effect.commands[0])]
        with client.pipeline(transaction=effect.atomic) as pipe:
            for command in effect.commands:
                pipe.execute_command(*command)
            return list(pipe.execute())
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
        raise _unavailable(exc) from None


async def run_async(client: AsyncClient, effect: StoreCommands) -> list[Any]:
    import redis

    try:
        if len(effect.commands) == 1:
            return [await client.execute_command(*effect.commands[0])]
        async with client.pipeline(transaction=effect.atomic) as pipe:
            for command in effect.commands:
                pipe.execute_command(*command)
            return list(await pipe.execute())
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
        raise _unavailable(exc) from None


def _unavailable(exc: Exception) -> StoreUnavailable:
    # The message names the failure, never the URL (it may hold a password).
    logger.warning("wxauth: the session store failed: %s: %s", type(exc).__name__, exc)
    return StoreUnavailable(f"the session store (Redis) failed: {type(exc).__name__}")
