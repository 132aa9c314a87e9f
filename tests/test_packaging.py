"""What the package index gets: the sdist (license, the files the README links to, no tests
without their helpers), and the `examples` extra that makes every example runnable."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tarfile
from email.parser import Parser
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from .servers import REPO_ROOT, python_command

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the suite runs on 3.11 in CI
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")

EXAMPLES = REPO_ROOT / "examples"
INSTALL_LINE = 'python -m pip install -e ".[examples]"'
# The sdist is built from a copy of these, so the checkout gets no build/ or egg-info.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in")
SOURCE_DIRS = ("wxauth_middleware", "docs", "examples", "bench", "tests")


def pyproject() -> dict[str, object]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        data: dict[str, object] = tomllib.load(file)
    return data


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


def imported_modules(path: Path) -> set[str]:
    """The top-level modules `path` imports (absolute imports only)."""
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_examples_extra_covers_every_import_of_every_example() -> None:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    extra = {requirement_name(r) for r in project["optional-dependencies"]["examples"]}
    core = {requirement_name(r) for r in project["dependencies"]}
    for name in sorted(extra):  # real distributions, installed here by the test extra
        try:
            version(name)
        except PackageNotFoundError:
            pytest.fail(f"the examples extra names {name!r}, which is not installed")
    local = {"wxauth_middleware", "dev_settings", "django_app", "__future__"}
    sources = sorted(EXAMPLES.rglob("*.py"))
    assert len(sources) >= 5
    for source in sources:
        third_party = imported_modules(source) - local - set(sys.stdlib_module_names)
        # Module names are the distributions' names here (fastapi, flask, django, ...).
        missing = third_party - extra - core
        assert not missing, (
            f"{source.relative_to(REPO_ROOT)} imports {missing}: not installed by {INSTALL_LINE}"
        )


@pytest.mark.parametrize(
    "example",
    [
        "starlette_app.py",
        "fastapi_app.py",
        "flask_app.py",
        "django_app/manage.py",
        "django_app/__init__.py",
    ],
)
def test_each_example_says_how_to_install_what_it_needs(example: str) -> None:
    docstring = ast.get_docstring(ast.parse((EXAMPLES / example).read_text("utf-8")))
    assert docstring is not None
    assert INSTALL_LINE in docstring


def test_the_readme_gives_the_examples_their_install_line() -> None:
    readme = (REPO_ROOT / "README.md").read_text("utf-8")
    table = readme.split("| framework | example", 1)[0].rsplit("\n\n", 2)[-2:]
    assert INSTALL_LINE in "\n\n".join(table)


def build_sdist(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        shutil.copy2(REPO_ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")
    for name in SOURCE_DIRS:
        shutil.copytree(REPO_ROOT / name, source / name, ignore=ignore)
    out = tmp_path / "dist"
    build = "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))"
    result = subprocess.run(  # noqa: S603 (our own interpreter, fixed arguments)
        python_command("-c", build, str(out)),
        cwd=source,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out / result.stdout.strip().splitlines()[-1]


def test_the_sdist_has_the_license_and_what_the_readme_links_to(tmp_path: Path) -> None:
    try:
        setuptools_major = int(version("setuptools").split(".")[0])
    except PackageNotFoundError:
        setuptools_major = 0
    if setuptools_major < 77:
        reason = 'needs setuptools>=77 (PEP 639 license metadata): pip install -e ".[test]"'
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    sdist = build_sdist(tmp_path)
    with tarfile.open(sdist) as archive:
        root = archive.getnames()[0].split("/")[0]
        names = {name.removeprefix(root + "/") for name in archive.getnames()}
        member = archive.extractfile(f"{root}/PKG-INFO")
        assert member is not None
        metadata = Parser().parsestr(member.read().decode("utf-8"))
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert "LICENSE" in names
    assert "wxauth_middleware/py.typed" in names
    # No tests: the repository's suite needs its helpers, servers and a browser.
    assert not any(name.startswith("tests/") for name in names)
    # Every relative link of the README (the index shows it as the description) is shipped.
    readme = (REPO_ROOT / "README.md").read_text("utf-8")
    links = {
        target.split("#")[0]
        for target in re.findall(r"\]\(([^)\s]+)\)", readme)
        if not target.startswith(("http://", "https://", "#", "mailto:"))
    }
    assert links, "the README links to docs/ and bench/"
    assert sorted(links - names) == []


def readme_commands() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text("utf-8")
    return re.findall(r"^python -m pip install .*$", readme, flags=re.MULTILINE)


def test_ci_runs_the_readme_test_command_with_the_pinned_versions() -> None:
    ci = (REPO_ROOT / ".ci" / "run").read_text("utf-8")
    test_command = next(c for c in readme_commands() if "pytest" in c)
    assert "-c .ci/constraints.txt" in test_command
    assert re.search(rf"^\s*{re.escape(test_command)}$", ci, flags=re.MULTILINE), ci


def test_the_constraints_pin_every_test_requirement_exactly() -> None:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    lines = (REPO_ROOT / ".ci" / "constraints.txt").read_text("utf-8").splitlines()
    pinned = {}
    for line in lines:
        if line and not line.startswith("#"):
            name, _, pin = line.partition("==")
            assert pin, f"{line!r} is not NAME==VERSION"
            pinned[name.lower().replace("_", "-")] = pin
    required = project["dependencies"] + project["optional-dependencies"]["test"]
    missing = {requirement_name(r) for r in required} - set(pinned)
    assert not missing, f"not pinned in .ci/constraints.txt (run bash .ci/lock): {missing}"


def test_every_dependency_floor_is_listed_for_the_oldest_check() -> None:
    result = subprocess.run(  # noqa: S603 (our own fixed arguments)
        [sys.executable, str(REPO_ROOT / ".ci" / "oldest.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    oldest = dict(line.split("==") for line in result.stdout.split())
    project = pyproject()["project"]
    assert isinstance(project, dict)
    for requirement in project["dependencies"] + project["optional-dependencies"]["redis"]:
        name = requirement_name(requirement)
        assert oldest[name] == requirement.split(">=")[1], requirement
