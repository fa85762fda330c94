"""Randomness for differential privacy: fresh operating-system entropy, never the user seed.

A DP guarantee holds only if the noise is unpredictable to the adversary. The pipeline's
``seed`` is public (it is in the config and the manifest), so nothing that a DP mechanism
draws may derive from it: an attacker who knows the seed and every other row could
recompute both candidate releases and decide membership with certainty.

* :func:`secure_rng` -- a numpy ``Generator`` seeded from 256 bits of OS entropy, for the
  random *choices* inside a DP mechanism (Poisson subsampling, per-patient row caps).
* :func:`secure_torch_generator` -- a CPU ``torch.Generator`` seeded from OS entropy, for
  DP-SGD noise (opacus's ``secure_mode`` needs ``torchcsprng``, which does not install here).
* :func:`calibrate_gaussian` / :func:`calibrate_laplace` and their ``release`` (or the
  lower-level :func:`gaussian_release` / :func:`laplace_release`) -- noise added to a
  released statistic. The real statistic is handed to OpenDP 0.16 (``make_gaussian`` /
  ``make_laplace``), whose samplers are exact discrete samplers fed by the OS
  cryptographic source; the output is snapped to OpenDP's grid, so the floating-point
  attack of Mironov (2012) on textbook ``x + normal()`` does not apply. Never numpy's
  ``normal`` for a DP release.

Grid and calibration. Integer statistics (counts, histograms) get the exact discrete
Gaussian/Laplace over the integers: no rounding, OpenDP's privacy map is the textbook
``Δ²/(2σ²)`` (resp. ``Δ/b``). Real-valued statistics are rounded by OpenDP to the grid
``2^k`` before integer noise is added on that grid; the rounding can move neighbouring
inputs apart by up to ``2^k·√size`` (L2; ``2^k·size`` in L1), which OpenDP's map adds to
the sensitivity. We pick ``k = floor(log2(min(σ, Δ/√size))) - GRID_BITS`` (grid at most
``σ/1024`` and rounding at most ``Δ/1024``; OpenDP's default ``k`` is ~5x slower, ~100 µs
against ~20 µs per value measured here) and then **inflate σ** by the rounding term, so
that OpenDP's own map at the true sensitivity is at most the ``ρ`` (``ε``) the ledger is
charged -- the charged number is always the caller's, and the noise is at most ~0.1 %
larger than the textbook σ. :func:`calibrate_gaussian` verifies this with OpenDP's map.

Consequence, stated in every DP report and manifest: a DP run is not bit-reproducible.
``seed`` still fixes everything that is not part of a DP mechanism (public splits, model
initialisation, sampling from the fitted model).
"""

from __future__ import annotations

import functools
import math
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthdata.errors import ConfigError, DataError

__all__ = [
    "GRID_BITS",
    "REPRODUCIBILITY_NOTE",
    "NoiseCalibration",
    "calibrate_gaussian",
    "calibrate_laplace",
    "gaussian_release",
    "grid_exponent",
    "laplace_release",
    "secure_rng",
    "secure_seed",
    "secure_torch_generator",
]

GRID_BITS = 10  # the output grid is 2^-10 of the noise scale (and of Δ/√size)
_MAX_BUMPS = 60

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


# -- vetted samplers (OpenDP) -------------------------------------------------------------

def _opendp() -> Any:
    """OpenDP's domains, metrics and measurements (``opendp.prelude`` would also import its
    scikit-learn extras: ~3.5 s against ~0.3 s, measured here)."""
    from types import SimpleNamespace

    import opendp.domains as domains
    import opendp.measurements as measurements
    import opendp.metrics as metrics
    import opendp.mod as mod

    mod.enable_features("contrib")
    return SimpleNamespace(atom_domain=domains.atom_domain, vector_domain=domains.vector_domain,
                           l1_distance=metrics.l1_distance, l2_distance=metrics.l2_distance,
                           m=measurements)


def grid_exponent(scale: float, rounding_room: float | None = None) -> int:
    """The grid exponent ``k`` (grid ``2^k``) for a real-valued release at ``scale``.

    ``2^k <= scale/1024`` keeps the snapping far below the noise; with ``rounding_room``
    (``Δ/√size`` for L2, ``Δ/size`` for L1) also ``2^k <= rounding_room/1024``, so the
    rounding term OpenDP adds to the sensitivity is at most ``Δ/1024``.
    """
    ref = float(scale) if rounding_room is None else min(float(scale), float(rounding_room))
    if not (ref > 0 and math.isfinite(ref)):
        raise ConfigError(f"the noise scale must be a finite number > 0, got {scale!r}")
    return math.floor(math.log2(ref)) - GRID_BITS


def as_statistic(value: Any, what: str) -> tuple[np.ndarray, bool]:
    """``value`` as a 1-D array and whether it is an integer statistic; DataError if it is
    not numeric or not finite (OpenDP would release ±inf as is)."""
    arr = np.asarray(value)
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        try:
            arr = arr.astype(float)
        except (TypeError, ValueError) as err:
            raise DataError(f"{what}: a DP release needs numbers, got dtype {arr.dtype}") from err
    integer = bool(np.issubdtype(arr.dtype, np.integer))
    if not integer:
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise DataError(f"{what}: {bad} of {arr.size} value(s) are NaN or infinite; a DP "
                            "release needs finite values -- clip or impute the statistic first")
    return arr, integer


def _release(kind: str, value: Any, scale: float, k: int | None, what: str) -> np.ndarray | float:
    arr, integer = as_statistic(value, what)
    if not (scale > 0 and math.isfinite(scale)):
        raise ConfigError(f"{what}: the noise scale must be a finite number > 0, got {scale!r}")
    if integer and k is not None:
        raise ConfigError(f"{what}: an integer statistic is released on the integers; "
                          "do not pass a grid exponent k")
    flat = arr.reshape(-1)
    out: np.ndarray
    if flat.size == 0:
        out = np.zeros(0, dtype=np.int64 if integer else float)
    else:
        meas = _measurement(kind, scale, int(flat.size), integer,
                            None if integer else (grid_exponent(scale) if k is None else int(k)))
        data = [int(v) for v in flat] if integer else [float(v) for v in flat]
        out = np.asarray(meas(data), dtype=np.int64 if integer else float)
    out = out.reshape(arr.shape)
    if out.ndim == 0:
        return int(out) if integer else float(out)
    return out


@functools.lru_cache(maxsize=256)
def _measurement(kind: str, scale: float, size: int, integer: bool, k: int | None) -> Any:
    """The OpenDP measurement (cached: it holds no randomness; every call draws afresh)."""
    dp = _opendp()
    atom = dp.atom_domain(T=int) if integer else dp.atom_domain(T=float, nan=False)
    metric = dp.l2_distance(T=float) if kind == "gaussian" else dp.l1_distance(T=float)
    space = dp.vector_domain(atom, size=size), metric
    make = dp.m.make_gaussian if kind == "gaussian" else dp.m.make_laplace
    return make(*space, scale=float(scale)) if integer else make(*space, scale=float(scale), k=k)


def gaussian_release(value: Any, sigma: float, *, k: int | None = None,
                     what: str = "statistic") -> np.ndarray | float | int:
    """``value`` plus discrete Gaussian noise of scale ``sigma`` (OpenDP ``make_gaussian``).

    Integer input (int/bool dtype) gets exact discrete Gaussian noise on the integers and
    stays integer; real input is snapped to the grid ``2^k`` (default
    :func:`grid_exponent` of ``sigma``) with discrete Gaussian noise on that grid. Scalars
    in, scalars out; arrays keep their shape (empty arrays come back empty). The caller
    owns the privacy accounting -- use :func:`calibrate_gaussian` to choose ``sigma`` and
    ``k`` for a ρ. Non-finite input raises ``DataError``.
    """
    return _release("gaussian", value, sigma, k, what)


def laplace_release(value: Any, scale: float, *, k: int | None = None,
                    what: str = "statistic") -> np.ndarray | float | int:
    """``value`` plus discrete Laplace noise of ``scale`` (OpenDP ``make_laplace``), on the
    integers for integer input and on the grid ``2^k`` otherwise (see
    :func:`gaussian_release`)."""
    return _release("laplace", value, scale, k, what)


@dataclass(frozen=True)
class NoiseCalibration:
    """A calibrated OpenDP release: the noise to draw and what to write on the ledger.

    ``scale`` is σ (Gaussian) or the Laplace scale ``b``; ``k`` the grid exponent (``None``
    for integer statistics); ``size`` the number of values it was calibrated for (the
    rounding term grows with it; ``None`` for integer statistics, where any size is fine);
    ``loss`` OpenDP's own privacy map at ``sensitivity`` (ρ for Gaussian, ε for Laplace),
    never above the budget it was calibrated to.
    """

    kind: str
    scale: float
    sensitivity: float
    k: int | None
    size: int | None
    loss: float

    def release(self, value: Any, what: str = "statistic") -> np.ndarray | float | int:
        """Draw the noisy copy of ``value`` (real statistics: at most ``size`` values)."""
        arr, integer = as_statistic(value, what)
        if integer != (self.k is None):
            kind = "an integer" if integer else "a real-valued"
            raise ConfigError(f"{what}: {kind} statistic does not match this calibration "
                              f"(calibrated for {'integers' if self.k is None else 'reals'})")
        if self.size is not None and arr.size > self.size:
            raise ConfigError(f"{what}: {arr.size} values, calibrated for {self.size}")
        return _release(self.kind, arr, self.scale, self.k, what)

    def ledger_params(self) -> dict[str, Any]:
        """The facts a ledger entry records about the sampler."""
        key = "opendp_rho" if self.kind == "gaussian" else "opendp_epsilon"
        return {"sampler": f"opendp discrete {self.kind}",
                "grid": 1.0 if self.k is None else 2.0 ** self.k, key: self.loss}


@functools.lru_cache(maxsize=1024)
def _calibrate(kind: str, budget: float, sensitivity: float, size: int | None) -> NoiseCalibration:
    name = "rho" if kind == "gaussian" else "epsilon"
    if not (budget > 0 and math.isfinite(budget)):
        raise ConfigError(f"{name} must be a finite number > 0, got {budget!r}")
    if not (sensitivity > 0 and math.isfinite(sensitivity)):
        raise ConfigError(f"sensitivity must be a finite number > 0, got {sensitivity!r}")
    if size is not None and (int(size) != size or size < 0):
        raise ConfigError(f"size must be a non-negative integer, got {size!r}")
    delta_s = float(sensitivity)
    base = delta_s / math.sqrt(2.0 * budget) if kind == "gaussian" else delta_s / budget
    k = None
    scale = base
    if size is not None:
        per_unit = math.sqrt(max(int(size), 1)) if kind == "gaussian" else max(int(size), 1)
        k = grid_exponent(base, delta_s / per_unit)
        rounding = 2.0 ** k * per_unit
        scale = base * (delta_s + rounding) / delta_s
    # OpenDP's map (computed with outward rounding) is the judge: nudge σ up until it fits
    meas = _measurement(kind, scale, max(int(size or 1), 1), size is None, k)
    for attempt in range(_MAX_BUMPS):
        loss = float(meas.map(delta_s))
        if loss <= budget:
            return NoiseCalibration(kind, float(scale), delta_s, k,
                                    None if size is None else int(size), loss)
        scale *= 1.0 + min(1e-12 * 4.0 ** attempt, 1e-3)
        meas = _measurement(kind, scale, max(int(size or 1), 1), size is None, k)
    raise RuntimeError(f"could not calibrate OpenDP {kind} noise to {name}={budget:g}")


def calibrate_gaussian(rho: float, sensitivity: float, *, size: int | None = None
                       ) -> NoiseCalibration:
    """σ (and grid) of a Gaussian release whose OpenDP privacy map is ``<= rho`` (zCDP).

    ``sensitivity`` is the L2 sensitivity. ``size=None``: an integer statistic (exact
    discrete Gaussian, σ = Δ/√(2ρ) up to a floating-point nudge); otherwise the number of
    real values released, which sets the grid and the σ inflation for rounding (module
    docstring).
    """
    return _calibrate("gaussian", float(rho), float(sensitivity), size)


def calibrate_laplace(epsilon: float, sensitivity: float, *, size: int | None = None
                      ) -> NoiseCalibration:
    """Scale (and grid) of a Laplace release whose OpenDP map is ``<= epsilon`` (pure DP);
    ``sensitivity`` is the L1 sensitivity, ``size`` as in :func:`calibrate_gaussian`."""
    return _calibrate("laplace", float(epsilon), float(sensitivity), size)
