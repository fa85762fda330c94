"""The registry tells "optional extra missing" (skip) from "our module is broken" (fail)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthdata.errors import ConfigError, MissingExtraError
from synthdata.models import registry


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for throwaway generator modules, and a registry restored after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_GENERATORS", dict(registry._GENERATORS))
    monkeypatch.setattr(registry, "_EXTRAS", dict(registry._EXTRAS))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("scratch_gen_")]:
        del sys.modules[name]


def test_missing_third_party_dependency_is_a_missing_extra(scratch: Path) -> None:
    (scratch / "scratch_gen_extra.py").write_text("import not_a_real_package_xyz\n")
    registry.register("needs_extra", "scratch_gen_extra:Gen")
    registry._EXTRAS["needs_extra"] = "deep"
    with pytest.raises(MissingExtraError, match=r"not_a_real_package_xyz.*pip install "
                                                r"'synthdata\[deep\]'"):
        registry.generator_class("needs_extra")


def test_a_module_that_raises_on_import_is_not_a_missing_extra(scratch: Path) -> None:
    (scratch / "scratch_gen_broken.py").write_text("raise RuntimeError('broken at import')\n")
    registry.register("broken", "scratch_gen_broken:Gen")
    with pytest.raises(RuntimeError, match="broken at import"):
        registry.generator_class("broken")


def test_a_missing_synthdata_module_is_a_bug_not_a_missing_extra(scratch: Path) -> None:
    (scratch / "scratch_gen_inner.py").write_text("import synthdata.models.no_such_module\n")
    registry.register("inner", "scratch_gen_inner:Gen")
    with pytest.raises(ModuleNotFoundError) as info:
        registry.generator_class("inner")
    assert not isinstance(info.value, ConfigError)
    assert info.value.name == "synthdata.models.no_such_module"


def test_a_syntax_error_in_a_generator_module_propagates(scratch: Path) -> None:
    (scratch / "scratch_gen_syntax.py").write_text("def broken(:\n")
    registry.register("syntax", "scratch_gen_syntax:Gen")
    with pytest.raises(SyntaxError):
        registry.generator_class("syntax")


def test_a_wrong_class_name_names_the_entry(scratch: Path) -> None:
    (scratch / "scratch_gen_ok.py").write_text("class Gen:\n    name = 'ok'\n")
    registry.register("wrong", "scratch_gen_ok:Missing")
    with pytest.raises(AttributeError, match="generator 'wrong'.*no 'Missing'"):
        registry.generator_class("wrong")


def test_register_refuses_duplicates_and_bad_targets() -> None:
    with pytest.raises(ConfigError, match="already registered; pass replace=True"):
        registry.register("gmm", "synthdata.models.gmm:GMMGenerator")
    with pytest.raises(ConfigError, match="must look like 'package.module:Class'"):
        registry.register("x_bad_target", "no_colon_here")


def test_conformance_collection_does_not_swallow_a_broken_module(scratch: Path) -> None:
    """The conformance test's parametrisation skips only MissingExtraError."""
    from tests.models.test_conformance import _available

    (scratch / "scratch_gen_boom.py").write_text("raise ImportError('cannot import name x')\n")
    registry.register("boom", "scratch_gen_boom:Gen")
    with pytest.raises(ImportError, match="cannot import name x"):
        _available()
