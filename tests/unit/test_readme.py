"""The README documents every setting portus_fab reads."""

from __future__ import annotations

from pathlib import Path

from portus_fab.settings import SPECS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme_table() -> None:
    text = README.read_text()
    missing = [spec.name for spec in SPECS if f"| `{spec.name}` |" not in text]
    assert not missing, f"settings missing from README.md: {missing}"
