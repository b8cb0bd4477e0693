"""pyproject's "speak no HTTP" contract names modules one by one (import-linter has no
exceptions inside a package): every domain module but the routers must be in it, so a module
added later is covered too."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ("runs", "dashboards", "schedule", "feeds", "alerts")
ROUTERS = {"__init__.py", "api.py", "start_api.py", "boards_api.py"}


def test_every_domain_module_but_the_routers_is_held_to_speak_no_http() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    no_http = next(c for c in contracts if c["name"].endswith("speaks no HTTP"))
    assert {"fastapi", "starlette", "csvboard.api"} <= set(no_http["forbidden_modules"])
    modules = {
        f"csvboard.{package}.{path.stem}"
        for package in DOMAINS
        for path in (ROOT / "src" / "csvboard" / package).glob("*.py")
        if path.name not in ROUTERS
    }
    assert modules - set(no_http["source_modules"]) == set()
