"""Prints, as pip constraints, the oldest release that pyproject.toml allows of each runtime
dependency and of each framework the contrib modules integrate: `.ci/run` type-checks the
package against them (and against .ci/constraints.txt, the newest), so a floor that no longer
type-checks, or does not exist, fails CI instead of a user's build."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

EXTRAS = ("redis", "platform", "demo", "examples")


def floors(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in EXTRAS:
        requirements += project["optional-dependencies"][extra]
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][0-9.]*)", requirement)
        if match is None:
            sys.exit(f"oldest.py: {requirement!r} is not NAME>=VERSION")
        pins[match[1].lower()] = match[2]
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


if __name__ == "__main__":
    if sys.argv[1:] == ["--extras"]:
        print(",".join(EXTRAS))  # what to install with these constraints
    else:
        print("\n".join(floors(Path(__file__).resolve().parent.parent / "pyproject.toml")))
