"""docs/architecture.md lists what the registries hold (generated, so it cannot drift)."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthdata.docs import GENERATED, main, render
from synthdata.errors import ConfigError

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def test_architecture_doc_matches_the_registries() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert render(text) == text, ("docs/architecture.md is out of date; run "
                                  "`python -m synthdata.docs --write docs/architecture.md`")
    for name in GENERATED:
        assert f"<!-- generated:{name} -->" in text


def test_generated_lists_name_every_entry() -> None:
    from synthdata.evaluate.gate import GATE_PRESETS
    from synthdata.evaluate.metrics import METRIC_INFO
    from synthdata.models.registry import available_generators

    text = DOC.read_text(encoding="utf-8")
    for name in [*available_generators(), *GATE_PRESETS, *METRIC_INFO]:
        assert f"| `{name}` |" in text, name


def test_render_replaces_a_stale_block_and_refuses_an_unknown_one() -> None:
    stale = "x\n<!-- generated:generators -->\n| old |\n<!-- end generated -->\ny\n"
    fresh = render(stale)
    assert "| old |" not in fresh and "| `gmm` |" in fresh and fresh.endswith("y\n")
    with pytest.raises(ConfigError, match="unknown generated block 'nope'"):
        render("<!-- generated:nope -->\n<!-- end generated -->")


def test_write_mode_rewrites_the_file(tmp_path: Path) -> None:
    doc = tmp_path / "a.md"
    doc.write_text("<!-- generated:gate_presets -->\n<!-- end generated -->\n")
    assert main(["--write", str(doc)]) == 0
    assert "| `default` |" in doc.read_text()
    assert main(["--bogus"]) == 2
