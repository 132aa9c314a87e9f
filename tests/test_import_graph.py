"""The package's modules import each other without a cycle (function-level imports included),
and none grows past what a reader takes in."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "wxauth_middleware"
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(source: str, name: str, is_package: bool = False) -> set[str]:
    """What module `name` imports, at any depth of its code (in functions, and in
    TYPE_CHECKING blocks too: a cycle there is a cycle for the reader)."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # `from . import x` imports the module x.
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {
        name: {
            target
            for target in _imports(
                path.read_text(encoding="utf-8"), name, path.name == "__init__.py"
            )
            if target in modules and target != name
        }
        for name, path in modules.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> list[str] | None:
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target in on_stack:
                return [*stack[stack.index(target) :], target]
            if target not in done and (found := visit(target)) is not None:
                return found
        stack.pop()
        on_stack.discard(node)
        done.add(node)
        return None

    for node in sorted(graph):
        if node not in done and (found := visit(node)) is not None:
            return found
    return None


def test_no_import_cycle() -> None:
    graph = _graph()
    assert len(graph) > 30
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_checker_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_function_level_imports_count() -> None:
    source = (
        "from .a import x\n"
        "def f():\n"
        "    from ..b import y\n"
        "    from . import c\n"
        "if TYPE_CHECKING:\n"
        "    import pkg.d\n"
    )
    found = _imports(source, "pkg.sub.m")
    assert {"pkg.sub.a", "pkg.b", "pkg.sub.c", "pkg.d"} <= found
    assert "pkg.sub.a" in _imports("from .a import x\n", "pkg.sub", is_package=True)


def test_modules_stay_small() -> None:
    too_long = {
        path.relative_to(PACKAGE).as_posix(): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert too_long == {}


# The modules that carry effects out: the adapters, the drivers and the clients they use, the
# options module (it checks the type of a `transport=`) and the startup's reachability check.
# Everything else in the package is sans-I/O: it decides and builds, and may not even import
# an I/O library at module level.
IO_MODULES = {
    "asgi",
    "wsgi",
    "drivers",
    "pool",
    "sync_pool",
    "redis_client",
    "options",
    "reachability",
}
IO_LIBRARIES = {"httpx", "httpcore", "redis", "anyio", "asyncio", "socket", "uvicorn"}


def _module_level_imports(source: str) -> set[str]:
    """The top-level names a module imports when it is imported (TYPE_CHECKING blocks and
    function bodies excluded)."""
    found: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.partition(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
    return found


def test_protocol_modules_import_no_io_library() -> None:
    offenders = {
        path.stem: sorted(libraries)
        for path in PACKAGE.glob("*.py")
        if path.stem not in IO_MODULES
        and (libraries := _module_level_imports(path.read_text(encoding="utf-8")) & IO_LIBRARIES)
    }
    assert offenders == {}


def test_the_io_checker_sees_module_level_imports_only() -> None:
    source = (
        "import httpx\n"
        "from redis.asyncio import Redis\n"
        "if TYPE_CHECKING:\n"
        "    import anyio\n"
        "def f():\n"
        "    import socket\n"
    )
    assert _module_level_imports(source) & IO_LIBRARIES == {"httpx", "redis"}
