"""Generator registry: a literal dict of import targets, resolved on first use."""

from __future__ import annotations

import importlib
from typing import Any

from synthdata.errors import ConfigError, MissingExtraError
from synthdata.schema.model import Schema

_GENERATORS: dict[str, str] = {
    "gmm": "synthdata.models.gmm:GMMGenerator",
    "vae": "synthdata.models.vae:VAEGenerator",
    "ctgan": "synthdata.models.ctgan:CTGANGenerator",
    "ddpm": "synthdata.models.diffusion:DDPMGenerator",
    "ar": "synthdata.models.sequence:SequenceGenerator",   # child tables: one history per parent
}
# The optional extra that provides each generator's heavy dependencies.
_EXTRAS: dict[str, str] = {"vae": "deep", "ctgan": "deep", "ddpm": "deep", "ar": "deep"}


def available_generators() -> list[str]:
    return sorted(_GENERATORS)


def generator_targets() -> dict[str, str]:
    """``{name: "module:Class"}`` of every registered generator (a copy)."""
    return dict(_GENERATORS)


def generator_extras() -> dict[str, str]:
    """``{name: extra}``: the optional extra that provides a generator's dependencies."""
    return dict(_EXTRAS)


def register(name: str, target: str, *, replace: bool = False) -> None:
    """Register ``"module:Class"`` under ``name`` (``replace=True`` to override)."""
    if name in _GENERATORS and not replace:
        raise ConfigError(f"generator {name!r} is already registered; pass replace=True")
    if ":" not in target:
        raise ConfigError(f"generator target must look like 'package.module:Class', got {target!r}")
    _GENERATORS[name] = target


def generator_class(name: str) -> type[Any]:
    """The class registered under ``name``, imported now.

    A missing third-party dependency raises :class:`MissingExtraError` naming the extra to
    install; anything else that goes wrong importing the generator's module (a synthdata
    module missing, a syntax error, an exception at import time) is a bug in the package
    and propagates unchanged, so a test or a run fails instead of skipping the generator.
    """
    if name not in _GENERATORS:
        raise ConfigError(f"unknown generator {name!r}; choose one of {available_generators()}")
    module_name, _, attr = _GENERATORS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if not err.name or err.name.split(".")[0] == "synthdata":
            raise
        extra = _EXTRAS.get(name, "dev")
        raise MissingExtraError(f"generator {name!r} needs the optional dependency {err.name!r}; "
                                f"install it with: pip install 'synthdata[{extra}]'") from err
    try:
        cls: type[Any] = getattr(module, attr)
    except AttributeError:
        raise AttributeError(f"generator {name!r}: module {module_name} has no {attr!r} "
                             "(the registry entry is wrong)") from None
    return cls


def make_generator(name: str, schema: Schema, **params: Any) -> Any:
    """Build an unfitted generator by name, e.g. ``make_generator("gmm", schema, seed=0)``."""
    cls = generator_class(name)
    try:
        return cls(schema, **params)
    except TypeError as err:
        allowed = cls._param_names()
        unknown = sorted(set(params) - set(allowed))
        raise ConfigError(f"generator {name!r}: unknown parameter(s) {unknown}; "
                          f"allowed: {allowed}") from err
