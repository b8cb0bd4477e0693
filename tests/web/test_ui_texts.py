"""Every UI label the scripts use exists in both languages (a missing one shows "undefined")."""

from __future__ import annotations

import re

import pytest

from csvboard.web.i18n import texts
from csvboard.web.routes import STATIC_DIR


@pytest.mark.parametrize(
    "script",
    ["admin.js", "kiosk.js", "steps.js", "progress.js", "order_board.js", "signage.js", "load.js"],
)
def test_scripts_use_only_known_labels(script: str) -> None:
    source = (STATIC_DIR / script).read_text(encoding="utf-8")
    used = set(re.findall(r"\bt\.([a-z_][a-z0-9_]*)", source))
    assert used, script
    for lang in ("ja", "en"):
        missing = used - set(texts(lang))
        assert not missing, f"{script} ({lang}): {sorted(missing)}"


@pytest.mark.parametrize(
    "template", sorted(p.name for p in (STATIC_DIR.parent / "templates").glob("*.html"))
)
def test_templates_use_only_known_labels(template: str) -> None:
    source = (STATIC_DIR.parent / "templates" / template).read_text(encoding="utf-8")
    used = set(re.findall(r"\{\{[^}]*\bt\.([a-z_][a-z0-9_]*)", source))
    for lang in ("ja", "en"):
        missing = used - set(texts(lang))
        assert not missing, f"{template} ({lang}): {sorted(missing)}"
