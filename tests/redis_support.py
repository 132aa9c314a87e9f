"""Real Redis deployments for the tests, from Debian's `redis-server` (installed by `.ci/run`),
on free 127.0.0.1 ports, in temporary directories: one server (with its append-only file on,
so that a restart keeps what it held); a primary and a replica behind three Sentinels
(`redis-server --sentinel`, short timeouts so that a failover takes seconds); a Redis Cluster
of three primaries (`redis-cli --cluster create`). Tests that need them skip without
`redis-server`, except in CI, where they fail."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.cluster

from .servers import READY_TIMEOUT_S, STOP_TIMEOUT_S, free_port

REDIS_SERVER = shutil.which("redis-server")


def require_redis_server() -> str:
    """The redis-server program; skips the test without it (fails in CI)."""
    if REDIS_SERVER is None:
        message = "redis-server is not installed (apt-get install redis-server; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_SERVER


class RedisServer:
    """One redis-server process; `stop` and `start` again on the same port keep its data.
    `args` are more of its command line (a replica's, a cluster node's, `--sentinel` with
    `config`, the text of its configuration file)."""

    def __init__(
        self,
        program: str,
        *,
        port: int | None = None,
        password: str | None = None,
        args: Sequence[str] = (),
        config: str | None = None,
    ) -> None:
        self.program = program
        self.port = port or free_port()
        self.password = password
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self._args = tuple(args)
        self._dir = tempfile.TemporaryDirectory(prefix="wxauth-redis-")
        self._log = Path(self._dir.name) / "redis.log"
        self._config = Path(self._dir.name) / "redis.conf"
        self._config.write_text(config or "", "utf-8")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # Our own fixed arguments: nothing untrusted reaches the command line.
        self._process = subprocess.Popen(  # noqa: S603
            [
                self.program,
                str(self._config),
                *("--bind", "127.0.0.1", "--port", str(self.port), "--dir", self._dir.name),
                # No snapshots; the append-only file keeps the data across a restart.
                *("--save", "", "--appendonly", "yes", "--logfile", str(self._log)),
                *(
                    ("--requirepass", self.password, "--masterauth", self.password)
                    if self.password
                    else ()
                ),
                *self._args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        with redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=1
        ) as probe:
            wait_for("redis-server answering", lambda: self._alive() and bool(probe.ping()))

    def _alive(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            pytest.fail(f"redis-server exited early:\n{self.output()}")
        return True

    def stop(self) -> None:
        """Stop it the way an operator does (SIGTERM: the append-only file is flushed)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=STOP_TIMEOUT_S)
        self._process = None

    def kill(self) -> None:
        """Kill it at once (SIGKILL), as a crashed machine would go."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=STOP_TIMEOUT_S)
        self._process = None

    @contextmanager
    def stalled(self) -> Iterator[None]:
        """Stopped (SIGSTOP) while inside: connections stay open, nothing is answered, as
        a Redis stuck on a slow disk or a long command; it goes on (SIGCONT) on leaving."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self._process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def output(self) -> str:
        return self._log.read_text("utf-8", "replace") if self._log.exists() else ""

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=2
        )


# The data nodes' password of the Sentinel and Cluster deployments (the URL carries it).
PASSWORD = "s3cret-data-node-password"
SERVICE = "wxauth-primary"


def wait_for(what: str, ready: Callable[[], bool], timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen in {timeout} s")
        time.sleep(0.05)  # polling interval: the servers say nothing when they are ready


class SentinelDeployment:
    """A primary and its replica, watched by three Sentinels that fail over within about two
    seconds of the primary going down (down-after 1 s)."""

    def __init__(self, program: str) -> None:
        self.primary = RedisServer(program, password=PASSWORD)
        self.replica = RedisServer(
            program,
            password=PASSWORD,
            args=("--replicaof", "127.0.0.1", str(self.primary.port)),
        )
        monitor = (
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel auth-pass {SERVICE} {PASSWORD}\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 3000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        self.sentinels = [
            RedisServer(program, config=monitor, args=("--sentinel",)) for _ in range(3)
        ]
        nodes = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        self.url = f"redis+sentinel://:{PASSWORD}@{nodes}/{SERVICE}/0"

    def start(self) -> None:
        for server in (self.primary, self.replica, *self.sentinels):
            server.start()
        wait_for("the replica's first sync", lambda: self._replicated(self.primary))
        wait_for("the Sentinels seeing each other and the replica", self._watching)

    def _replicated(self, primary: RedisServer) -> bool:
        with primary.client() as client:
            info: dict[str, Any] = client.info("replication")
            return bool(info.get("connected_slaves", 0) >= 1 and "slave0" in info)

    def _watching(self) -> bool:
        for sentinel in self.sentinels:
            with redis.Redis(host="127.0.0.1", port=sentinel.port, socket_timeout=1) as client:
                (state,) = [m for m in client.sentinel_masters().values()]
                if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1:
                    return False
        return True

    def primary_port(self) -> int:
        """The port of the primary the Sentinels name now."""
        with redis.Redis(host="127.0.0.1", port=self.sentinels[0].port, socket_timeout=1) as c:
            _, port = c.sentinel_get_master_addr_by_name(SERVICE)
            return int(port)

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.primary_port(), password=PASSWORD, socket_timeout=2
        )

    def close(self) -> None:
        for server in (*self.sentinels, self.replica, self.primary):
            server.close()


def _cluster_port() -> int:
    # A node's cluster bus listens on its port + 10000: both must be free.
    while True:
        port = free_port()
        if port < 55000:
            return port


class ClusterDeployment:
    """A Redis Cluster of three primaries (no replicas), each with a third of the slots."""

    def __init__(self, program: str) -> None:
        args = ("--cluster-enabled", "yes", "--cluster-node-timeout", "1000")
        self.nodes = [
            RedisServer(program, port=_cluster_port(), password=PASSWORD, args=args)
            for _ in range(3)
        ]
        seeds = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        self.url = f"redis+cluster://:{PASSWORD}@{seeds}"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            pytest.fail("redis-cli is not installed (it comes with Debian's redis-server)")
        created = subprocess.run(  # noqa: S603 (our own fixed arguments)
            [
                cli,
                *("-a", PASSWORD, "--no-auth-warning", "--cluster", "create"),
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                *("--cluster-replicas", "0", "--cluster-yes"),
            ],
            capture_output=True,
            text=True,
            timeout=READY_TIMEOUT_S,
            check=False,
        )
        if created.returncode != 0:
            pytest.fail(f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}")
        wait_for("the cluster's state ok", self.healthy)

    def healthy(self) -> bool:
        for node in self.nodes:
            with node.client() as client:
                if client.cluster("INFO").get("cluster_state") != "ok":
                    return False
        return True

    def node_of(self, key: str) -> RedisServer:
        """The node that serves `key`'s hash slot."""
        with self.client() as client:
            node = client.get_node_from_key(key)
        return next(n for n in self.nodes if n.port == node.port)

    def client(self) -> redis.cluster.RedisCluster:
        return redis.cluster.RedisCluster(
            host="127.0.0.1", port=self.nodes[0].port, password=PASSWORD, socket_timeout=2
        )

    def close(self) -> None:
        for node in self.nodes:
            node.close()


# The deployments `redis_url` names (the `redis_store` fixture gives each in turn).
Deployment = RedisServer | SentinelDeployment | ClusterDeployment
