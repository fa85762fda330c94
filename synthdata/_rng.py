"""Local random generators: one seed in, independent streams out, no global state."""

from __future__ import annotations

from typing import Any

import numpy as np


def make_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Return a numpy Generator for ``seed`` (a Generator is passed through)."""
    if isinstance(seed, np.random.Generator):
        return seed
    check_seed(seed)
    return np.random.default_rng(seed)


def check_seed(seed: object, *, name: str = "seed") -> None:
    """Raise ``ConfigError`` unless ``seed`` is None or a non-negative integer."""
    from synthdata.errors import ConfigError

    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"{name} must be a non-negative integer or None, got {seed!r}")


def child_seed(rng: np.random.Generator) -> int:
    """Draw a 31-bit integer seed from ``rng`` for libraries that take an int."""
    return int(rng.integers(0, 2**31 - 1))


def make_torch_generator(rng: np.random.Generator) -> Any:
    """Return a CPU ``torch.Generator`` seeded from ``rng`` (torch imported lazily)."""
    import torch

    gen = torch.Generator(device="cpu")
    gen.manual_seed(child_seed(rng))
    return gen
