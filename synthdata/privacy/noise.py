"""Randomness for differential privacy: fresh operating-system entropy, never the user seed.

A DP guarantee holds only if the noise is unpredictable to the adversary. The pipeline's
``seed`` is public (it is in the config and the manifest), so nothing that a DP mechanism
draws may derive from it: an attacker who knows the seed and every other row could
recompute both candidate releases and decide membership with certainty.

* :func:`secure_rng` -- a numpy ``Generator`` seeded from 256 bits of OS entropy, for the
  random *choices* inside a DP mechanism (Poisson subsampling, per-patient row caps).
* :func:`secure_torch_generator` -- a CPU ``torch.Generator`` seeded from OS entropy, for
  DP-SGD noise (opacus's ``secure_mode`` needs ``torchcsprng``, which does not install here).
* Noise added to released statistics goes through the vetted samplers of this module
  (OpenDP), never through numpy's floating-point ``normal``.

Consequence, stated in every DP report and manifest: a DP run is not bit-reproducible.
``seed`` still fixes everything that is not part of a DP mechanism (public splits, model
initialisation, sampling from the fitted model).
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

__all__ = ["REPRODUCIBILITY_NOTE", "secure_rng", "secure_seed", "secure_torch_generator"]

REPRODUCIBILITY_NOTE = (
    "DP noise is drawn from the operating system's cryptographic source, not from the "
    "seed: a DP run is not bit-reproducible; the seed fixes only its non-private parts."
)


def secure_seed(bits: int = 256) -> int:
    """A fresh random integer of ``bits`` bits from the OS cryptographic source."""
    return secrets.randbits(bits)


def secure_rng() -> np.random.Generator:
    """A numpy ``Generator`` seeded from 256 bits of OS entropy (a new stream every call)."""
    return np.random.Generator(np.random.PCG64DXSM(secure_seed(256)))


def secure_torch_generator() -> Any:
    """A CPU ``torch.Generator`` seeded from 63 bits of fresh OS entropy (torch lazily)."""
    import torch

    gen = torch.Generator(device="cpu")
    gen.manual_seed(secure_seed(63))
    return gen
