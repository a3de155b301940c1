"""Write pip constraints that pin each direct dependency of pyproject.toml to its declared floor.

Usage: ``python .ci/lowest_constraints.py OUT [NAME ...]``. Every entry of ``[project] dependencies`` and
those of ``[project.optional-dependencies] dev`` that are named on the command line (the test tools a job
installs) become ``name==floor`` lines in OUT. Each of them must declare a ``>=`` floor.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib  # Python 3.11+: CI runs this with its python3

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# "name[extra]>=1.2, <3 ; marker": the name and the version after ">=".
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)")
FLOOR = re.compile(r">=\s*([0-9][A-Za-z0-9.+!-]*)")


def floor_pin(requirement: str) -> tuple[str, str]:
    """``("name", "name==floor")`` of one requirement string; an error if it has no ``>=`` floor."""
    match = REQUIREMENT.match(requirement)
    if match is None:
        raise SystemExit(f"pyproject.toml: cannot read the requirement {requirement!r}")
    name, specifiers = match.groups()
    floor = FLOOR.search(specifiers)
    if floor is None:
        raise SystemExit(f"pyproject.toml: {requirement!r} declares no '>=' floor")
    return name, f"{name}=={floor.group(1)}"


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    out, wanted = Path(argv[0]), {n.lower() for n in argv[1:]}
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    pins = [floor_pin(r)[1] for r in project["dependencies"]]
    dev = dict(floor_pin(r) for r in project["optional-dependencies"]["dev"])
    missing = wanted - {n.lower() for n in dev}
    if missing:
        raise SystemExit(f"not in the dev extra: {', '.join(sorted(missing))}")
    pins += [pin for name, pin in dev.items() if name.lower() in wanted]
    out.write_text("".join(p + "\n" for p in pins))
    print(f"{out}: {len(pins)} floors", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
