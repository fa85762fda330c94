"""The typed public API: exported generator classes, make_generator overloads, privacy
mappings, scikit-learn style params (repr, get_params, set_params, clone), py.typed."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing
from pathlib import Path

import pandas as pd
import pytest

import synthdata as sd
from synthdata.errors import ConfigError
from synthdata.models.registry import _GENERATORS, generator_class, make_generator
from synthdata.privacy.config import DPConfig, as_dp_config

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = sd.Schema.from_dict({"name": "t", "columns": [
    {"name": "age", "kind": "integer"}, {"name": "sex", "kind": "categorical",
                                         "categories": ["F", "M"]}]})
CLASSES = {"gmm": "GMMGenerator", "vae": "VAEGenerator", "ctgan": "CTGANGenerator",
           "ddpm": "DDPMGenerator", "ar": "SequenceGenerator", "aim": "MarginalGenerator"}


def _frame(n: int = 200) -> pd.DataFrame:
    return pd.DataFrame({"age": [40 + (i * 7) % 40 for i in range(n)],
                         "sex": ["F" if i % 3 else "M" for i in range(n)]})


def test_generator_classes_are_exported_and_match_the_registry():
    for kind, cls_name in CLASSES.items():
        cls = getattr(sd, cls_name)
        assert cls is generator_class(kind) and cls.name == kind
        assert cls_name in sd.__all__ and cls_name in dir(sd)
    assert issubclass(sd.GMMGenerator, sd.BaseGenerator)
    assert set(CLASSES) == set(_GENERATORS)


def test_import_and_gmm_class_do_not_load_torch():
    code = ("import sys, synthdata as sd; sd.GMMGenerator; sd.make_generator; "
            "assert 'torch' not in sys.modules, 'torch loaded'; sd.VAEGenerator; "
            "assert 'torch' in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_overloads_follow_the_constructors():
    """One overload per kind, with exactly the constructor's keyword names and defaults."""
    overloads = typing.get_overloads(make_generator)
    by_kind = {}
    for fn in overloads:
        ann = inspect.signature(fn).parameters["name"].annotation
        kind = ann.split("'")[1] if "'" in ann else None  # "Literal['gmm']" (postponed)
        by_kind[kind] = fn
    assert set(by_kind) == set(CLASSES) | {None}  # None: the open `name: str` fallback
    for kind in CLASSES:
        sig = inspect.signature(by_kind[kind]).parameters
        params = {k: p.default for k, p in sig.items() if k not in ("name", "schema")}
        init = inspect.signature(generator_class(kind).__init__).parameters
        expected = {k: p.default for k, p in init.items() if k not in ("self", "schema")}
        assert params == expected, kind
        assert inspect.signature(by_kind[kind]).return_annotation == CLASSES[kind]


def test_make_generator_checks_name_params_and_schema():
    gen = make_generator("gmm", SCHEMA, n_components=3)
    assert isinstance(gen, sd.GMMGenerator) and gen.n_components == 3
    with pytest.raises(ConfigError, match=r"unknown generator 'nope'; choose one of "
                                          r"\['aim', 'ar', 'ctgan', 'ddpm', 'gmm', 'vae'\]"):
        make_generator("nope", SCHEMA)
    with pytest.raises(ConfigError, match=r"generator 'gmm': unknown parameter\(s\) "
                                          r"\['epochs'\]; allowed: \['n_components'"):
        make_generator("gmm", SCHEMA, epochs=3)
    with pytest.raises(ConfigError, match="schema must be a synthdata Schema"):
        make_generator("gmm", _frame())  # type: ignore[call-overload]


def test_privacy_accepts_a_mapping():
    gen = make_generator("gmm", SCHEMA, privacy={"epsilon": 3})
    assert gen.privacy == DPConfig(epsilon=3.0)
    assert gen.get_params()["privacy"] == DPConfig(epsilon=3.0)
    gen.set_params(privacy={"epsilon": 1, "delta": 1e-6})
    assert gen.privacy == DPConfig(epsilon=1.0, delta=1e-6)
    assert gen.set_params(privacy=None).privacy is None
    cfg = DPConfig(epsilon=2.0)
    assert as_dp_config(cfg) is cfg and as_dp_config(None) is None


@pytest.mark.parametrize("value, message", [
    ({"epsilon": -1}, r"gmm: privacy.epsilon: Input should be greater than 0 \(got -1\)"),
    ({"epsilom": 3}, r"privacy.epsilom: unknown key"),
    ({}, r"privacy.epsilon: required key is missing"),
    ({"epsilon": 3, "unit": "family"}, r"privacy.unit: Input should be 'row' or 'patient'"),
    ("3", r"privacy must be a DPConfig, a mapping such as \{'epsilon': 3.0\}, or None "
          r"for a non-private run; got str"),
    (3.0, r"got float"),
])
def test_bad_privacy_is_a_config_error(value, message):
    with pytest.raises(ConfigError, match=message):
        make_generator("gmm", SCHEMA, privacy=value)
    with pytest.raises(ConfigError, match=message.split(":")[-1].strip()):
        sd.GMMGenerator(SCHEMA).set_params(privacy=value)


def test_repr_shows_changed_params_in_sklearn_style():
    assert repr(sd.GMMGenerator(SCHEMA)) == "GMMGenerator(<schema 't': 2 columns>)"
    gen = sd.GMMGenerator(SCHEMA, n_components=5, seed=None, privacy={"epsilon": 3})
    assert repr(gen) == ("GMMGenerator(<schema 't': 2 columns>, n_components=5, "
                         "privacy=DPConfig(epsilon=3.0), seed=None)")
    assert repr(make_generator("vae", SCHEMA, epochs=3)) == \
        "VAEGenerator(<schema 't': 2 columns>, epochs=3)"


def test_get_set_params_and_clone():
    gen = sd.GMMGenerator(SCHEMA, n_components=2, max_iter=5, seed=1)
    params = gen.get_params()
    assert params == gen.get_params(deep=False)
    assert list(params) == list(inspect.signature(sd.GMMGenerator.__init__).parameters)[2:]
    assert gen.set_params(max_iter=7, seed=2) is gen
    assert (gen.max_iter, gen.seed) == (7, 2)
    with pytest.raises(ConfigError, match=r"GMMGenerator.set_params: unknown parameter\(s\) "
                                          r"\['epochs'\]; valid: \['n_components'"):
        gen.set_params(epochs=3)
    gen.fit(_frame())
    twin = gen.clone()
    assert type(twin) is sd.GMMGenerator and twin is not gen
    assert twin.get_params() == gen.get_params() and twin.schema is gen.schema
    assert not hasattr(twin, "transformer_")  # unfitted
    with pytest.raises(sd.NotFittedError):
        twin.sample(5)
    # same params and seed: the clone refits to the same samples
    pd.testing.assert_frame_equal(twin.fit(_frame()).sample(20, seed=3), gen.sample(20, seed=3))


def test_clone_copies_mutable_params():
    gen = make_generator("ddpm", SCHEMA, hidden_dims=[16, 16])
    twin = gen.clone()
    assert twin.hidden_dims == [16, 16] and twin.hidden_dims is not gen.hidden_dims


def test_version_comes_from_package_metadata():
    from importlib import metadata

    assert sd.__version__ == metadata.version("synthdata")


def test_package_ships_py_typed():
    assert (Path(sd.__file__).parent / "py.typed").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"synthdata" = ["py.typed"]' in pyproject
