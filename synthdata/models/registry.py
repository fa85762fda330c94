"""Generator registry: a literal dict of import targets, resolved on first use."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from synthdata.errors import ConfigError, MissingExtraError
from synthdata.schema.model import Schema

if TYPE_CHECKING:  # the classes import torch: only type checkers load them here
    from synthdata.models.base import BaseGenerator
    from synthdata.models.ctgan import CTGANGenerator
    from synthdata.models.diffusion import DDPMGenerator
    from synthdata.models.gmm import GMMGenerator
    from synthdata.models.marginal import MarginalGenerator
    from synthdata.models.sequence import SequenceGenerator
    from synthdata.models.vae import VAEGenerator
    from synthdata.privacy.config import PrivacyInput

__all__ = ["GeneratorName", "available_generators", "generator_class", "make_generator",
           "register"]

GeneratorName = Literal["gmm", "vae", "ctgan", "ddpm", "ar", "aim"]

_GENERATORS: dict[str, str] = {
    "gmm": "synthdata.models.gmm:GMMGenerator",
    "vae": "synthdata.models.vae:VAEGenerator",
    "ctgan": "synthdata.models.ctgan:CTGANGenerator",
    "ddpm": "synthdata.models.diffusion:DDPMGenerator",
    "ar": "synthdata.models.sequence:SequenceGenerator",   # child tables: one history per parent
    "aim": "synthdata.models.marginal:MarginalGenerator",  # noisy marginals (docs/marginal.md)
}
# The optional extra that provides each generator's heavy dependencies.
_EXTRAS: dict[str, str] = {"vae": "deep", "ctgan": "deep", "ddpm": "deep", "ar": "deep"}


def available_generators() -> list[str]:
    """Names ``make_generator`` accepts, sorted."""
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


def check_generator_name(name: object) -> str:
    """``name`` if it is registered, else ``ConfigError`` listing the choices (no import)."""
    if not isinstance(name, str) or name not in _GENERATORS:
        raise ConfigError(f"unknown generator {name!r}; choose one of {available_generators()}")
    return name


def generator_class(name: str) -> type[BaseGenerator]:
    """The class registered under ``name``, imported now.

    A missing third-party dependency raises :class:`MissingExtraError` naming the extra to
    install; anything else that goes wrong importing the generator's module (a synthdata
    module missing, a syntax error, an exception at import time) is a bug in the package
    and propagates unchanged, so a test or a run fails instead of skipping the generator.
    """
    check_generator_name(name)
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
        cls: type[BaseGenerator] = getattr(module, attr)
    except AttributeError:
        raise AttributeError(f"generator {name!r}: module {module_name} has no {attr!r} "
                             "(the registry entry is wrong)") from None
    return cls


def check_generator_params(name: str, params: dict[str, Any]) -> None:
    """ConfigError when ``params`` has a name the generator's constructor does not take
    (a registered class whose ``__init__`` takes ``**params`` accepts any name)."""
    sig = inspect.signature(generator_class(name).__init__)
    allowed = [p.name for p in sig.parameters.values() if p.name not in ("self", "schema")
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)] + ["threads"]
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"generator {name!r}: unknown parameter(s) {unknown}; "
                          f"allowed: {allowed}")


# One overload per registered name, with that generator's keyword parameters, so a type
# checker knows the class it gets back; tests/models/test_registry.py keeps them in step
# with the constructors.
@overload
def make_generator(name: Literal["gmm"], schema: Schema, *,
                   n_components: int | Literal["auto"] = "auto", max_components: int = 32,
                   min_rows_per_component: int = 50, max_iter: int = 100, tol: float = 1e-4,
                   reg_covar: float = 1e-3, alpha: float = 0.01,
                   discrete: Literal["auto", "onehot", "ordinal"] = "auto",
                   privacy: PrivacyInput = None, seed: int | None = 0) -> GMMGenerator: ...


@overload
def make_generator(name: Literal["vae"], schema: Schema, *, epochs: int = 300,
                   batch_size: int = 1000, lr: float = 2e-3, embedding_dim: int = 32,
                   compress_dims: Sequence[int] = (64,), decompress_dims: Sequence[int] = (64, 64),
                   numeric_encoding: Literal["quantile", "mode"] = "quantile",
                   loss_factor: float = 2.0, kl_weight: float = 1.0, l2scale: float = 1e-5,
                   early_stopping: bool = False, validation_share: float = 0.1,
                   patience: int = 30, verbose: bool = False, privacy: PrivacyInput = None,
                   seed: int | None = 0, wide_levels: int | None = None,
                   wide_dim: int = 16) -> VAEGenerator: ...


@overload
def make_generator(name: Literal["ctgan"], schema: Schema, *, epochs: int = 300,
                   batch_size: int = 500, generator_lr: float = 2e-4,
                   discriminator_lr: float = 2e-4, embedding_dim: int = 64,
                   generator_dims: Sequence[int] = (128,),
                   discriminator_dims: Sequence[int] = (128, 128),
                   numeric_encoding: Literal["quantile", "mode"] = "quantile", pac: int = 10,
                   discriminator_steps: int = 1, gradient_penalty: float = 10.0,
                   log_frequency: bool = True, early_stopping: bool = False,
                   validation_share: float = 0.1, patience: int = 10, verbose: bool = False,
                   privacy: PrivacyInput = None, seed: int | None = 0,
                   wide_levels: int | None = None, wide_dim: int = 16) -> CTGANGenerator: ...


@overload
def make_generator(name: Literal["ddpm"], schema: Schema, *, epochs: int = 1000,
                   batch_size: int | Literal["auto"] = "auto", lr: float = 2e-3,
                   hidden_dims: Sequence[int] = (128, 128), n_timesteps: int = 1000,
                   sampling_steps: int = 25,
                   numeric_encoding: Literal["quantile", "mode"] = "quantile",
                   privacy: PrivacyInput = None, seed: int | None = 0) -> DDPMGenerator: ...


@overload
def make_generator(name: Literal["ar"], schema: Schema, *, order_column: str | None = None,
                   epochs: int = 150, batch_size: int = 64, lr: float = 3e-3,
                   hidden_dim: int = 96, n_mixture: int = 3, max_length: int | None = None,
                   max_steps: int | None = 4000, calibrate: bool = True,
                   value_temperature: float = 0.7, fit_temperature: bool = True,
                   privacy: PrivacyInput = None,
                   seed: int | None = 0) -> SequenceGenerator: ...


@overload
def make_generator(name: Literal["aim"], schema: Schema, *,
                   mode: Literal["aim", "mst"] = "aim", n_bins: int = 16, max_parents: int = 2,
                   privacy: PrivacyInput = None, seed: int | None = 0) -> MarginalGenerator: ...


@overload
def make_generator(name: str, schema: Schema, **params: Any) -> BaseGenerator: ...


def make_generator(name: str, schema: Schema, **params: Any) -> BaseGenerator:
    """Build an unfitted generator by name.

    Parameters
    ----------
    name : {"gmm", "vae", "ctgan", "ddpm", "ar", "aim"} or a name given to :func:`register`
        (``ar``: the sequence model for linked child tables, see docs/sequence.md; ``aim``:
        the marginal-based generator, best under DP, see docs/marginal.md)
        Unknown names are a ``ConfigError`` listing the choices.
    schema : Schema
        The table's schema.
    **params
        The generator's keyword parameters (see its class: ``sd.GMMGenerator`` ...);
        ``privacy`` takes a ``DPConfig``, a mapping such as ``{"epsilon": 3}`` or None.
        ``threads`` (every generator): threads for torch, OpenMP and BLAS during fit and
        sample; None (default) means the cores available to the process.
        An unknown name is a ``ConfigError`` listing the allowed ones.

    Examples
    --------
    >>> gen = make_generator("gmm", schema, seed=0)                 # doctest: +SKIP
    >>> gen = make_generator("vae", schema, privacy={"epsilon": 3})  # doctest: +SKIP
    """
    if not isinstance(schema, Schema):
        raise ConfigError(f"make_generator({name!r}, schema): schema must be a synthdata "
                          f"Schema (sd.Schema.infer(df) or sd.Schema.load(path)), got "
                          f"{type(schema).__name__}")
    factory: Callable[..., BaseGenerator] = generator_class(name)  # each has its own params
    check_generator_params(name, params)
    from synthdata._threads import check_threads

    threads = check_threads(params.pop("threads", None), where=f"generator {name!r}: threads")
    gen = factory(schema, **params)
    gen.threads = threads  # every generator: applied around fit and sample (synthdata._threads)
    return gen
