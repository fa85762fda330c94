"""Diffusion generator: Gaussian diffusion on values, masked diffusion on discrete spans.

The model works on the transformer's layout with quantile (normal-score) encoding by default,
so every number is one LINEAR value column and every discrete column (and the missing
indicator of a nullable number) is a softmax span (``numeric_encoding="mode"`` adds a mode
span per number; it measured worse, see the class docstring).

Forward process, one time ``t`` in ``{1..n_timesteps}`` shared by the whole row, with the
cosine schedule ``a(t) = cos((t/T + s)/(1 + s) · π/2)² / cos(s/(1 + s) · π/2)²``:

- value columns: ``x_t = sqrt(a(t)) x_0 + sqrt(1 - a(t)) ε`` (Gaussian diffusion);
- softmax spans: each span is independently replaced by a MASK token with probability
  ``m(t) = 1 - a(t)`` (masked / absorbing-state diffusion; the same schedule, so the
  continuous and discrete parts are equally corrupted at every ``t``).

The denoiser is a ReLU MLP that sees the noisy values, the one-hot of the spans still
revealed (zeros where masked), one mask flag per span and a sinusoidal timestep embedding
(passed through a small MLP and added to the first hidden layer). It predicts ``ε`` for the
values and logits for every span. Loss per row: squared error of ``ε`` summed over value
columns plus cross-entropy summed over the masked spans, divided by the number of
columns. Adam with a learning rate decayed linearly to zero; the sampler uses an
exponential moving average of the weights (decay ``EMA_DECAY``).

Sampling walks ``sampling_steps`` times from ``T`` to 0, spaced more densely near ``T`` (see
:func:`sampling_times`; ``sampling_steps = n_timesteps`` is the full chain). The default
of 25 steps was chosen by measurement (benchmarks/results/ddpm_steps.md, issue 24: on
flchain and telco_churn, two fits each, 15 and 20 steps gave detection AUC up to 0.03
worse on telco_churn, whose many categorical spans need the steps). Values take
deterministic steps: predict ``x_0`` from ``ε̂`` (clipped to the training range), then move
to the next time with DDIM (η = 0, ``SOLVER_ORDER = 1``, the default) or DPM-Solver++(2M)
(``SOLVER_ORDER = 2``: the DDIM update with ``x̂_0`` extrapolated from the last two
predictions, second order at no extra denoiser call; measured no better at 25 steps). A span
still masked at time ``t`` is revealed on the way to ``s`` with probability
``(m(t) - m(s)) / m(t)``, its category drawn from the predicted softmax; at ``s = 0`` every
span is revealed. The reveal coins do not depend on the model, so every span's reveal step
is drawn up front (:func:`reveal_steps`), and the denoiser runs in pieces: the first layer's
input from the one-hots and mask flags is a running sum updated when a span is revealed, and
a span's logits are computed only for the rows that reveal it at this step (each span is
drawn once per row, not at every step). The only random draws are the starting noise, one
reveal coin and one category coin per span, from one seeded ``torch.Generator`` per chunk
of ``SAMPLE_ROWS`` rows (seeded in order from the sample's seed; chunks run in parallel,
the output does not depend on the number of threads).

Conditions (``conditions={"death": 1}``) are inpainting on the discrete part: the
conditioned spans start revealed with the requested category and stay fixed, and the
denoiser (trained on every pattern of masked/revealed spans) fills in the rest. No
rejection, so rare categories cost nothing extra; rows follow the model's conditional,
which for categories the model rarely saw is learned from few rows.

Differential privacy (``privacy=DPConfig(...)``): DP-SGD on the whole denoiser
(:class:`~synthdata.privacy.dpsgd.DPSGD`: Poisson sampling with rate ``batch / n`` where ``n``
is the run's noisy count (``data.count``), per-row clipping of the gradient of the row's loss
to ``max_grad_norm``, Gaussian noise from fresh OS entropy, σ calibrated so the planned steps
spend the training ε and charged to the ledger as ``model.ddpm.dp_sgd`` before training).
Every draw of the training loop (timesteps, value noise, span masks) also comes from the
DP-SGD run's secure generator, never the seed. The transformer is the DP one (quantile
encoding, DP bounds and categories), and the sampler's clip of predicted values is the
public constant ``DP_VALUE_CLIP`` instead of the largest training value. The EMA of the
weights is post-processing. No early stopping exists, so nothing reads held-out rows.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from synthdata._rng import make_torch_generator
from synthdata.errors import ConfigError
from synthdata.models._params import (
    AUTO,
    EpochBudget,
    check_dims,
    check_encoding,
    check_epochs,
    check_ints,
    resolve_epochs,
)
from synthdata.models._torch import (
    WIDE_DIM,
    Adam,
    SpanPlan,
    build_module,
    default_threads,
    has_wide_layers,
    mlp,
    record_epoch,
    torch_threads,
    wide_blocks,
    wide_embed,
    wide_head,
)
from synthdata.models.base import BaseGenerator, Progress, no_progress
from synthdata.schema.model import Schema
from synthdata.transform.columns import Activation

logger = logging.getLogger(__name__)

EMA_DECAY = 0.999
TIME_DIM = 64          # width of the sinusoidal timestep features
COSINE_OFFSET = 0.008  # ``s`` of the cosine schedule
MIN_ALPHA_BAR = 1e-5   # keeps ``1 / sqrt(a(T))`` finite
TIME_GRID_POWER = 1.5  # sampling grid shape, see :func:`sampling_times`
# Rows denoised together (one chunk per worker thread): the chain makes ``sampling_steps``
# passes over the same rows, so a batch whose activations stay in cache is fastest (16,384
# measured no faster). Changing it changes the rows a seed gives.
SAMPLE_ROWS = 4096
MIN_AUTO_BATCH, MAX_AUTO_BATCH = 128, 1024
# Under DP the largest training value is not public: predicted normal scores are clipped at
# this constant instead. The DP quantile map's outermost knots sit at ±2.58 (levels 0.005 and
# 0.995), and any score beyond them decodes to the DP bound of its column.
DP_VALUE_CLIP = 3.0
# Value update of the sampler: 1 = DDIM, 2 = DPM-Solver++(2M) (see ``_value_step``). Stays
# 1: measured (benchmarks/results/ddpm_steps.md) order 2 lowers the column distance on
# flchain but not detection AUC on telco_churn, at 25 steps or fewer.
SOLVER_ORDER = 1


def alpha_bar(t: torch.Tensor, n_timesteps: int) -> torch.Tensor:
    """Cosine schedule ``a(t)``: 1 at ``t = 0``, about 0 at ``t = n_timesteps``."""
    s = COSINE_OFFSET
    f = torch.cos((t.to(torch.float64) / n_timesteps + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    return (f / f0).clamp(MIN_ALPHA_BAR, 1.0).to(torch.float32)


def sampling_times(n_timesteps: int, steps: int) -> list[int]:
    """``steps + 1`` strictly decreasing integer times from ``n_timesteps`` to 0.

    ``t_k = T (1 - (k / S)^TIME_GRID_POWER)``: denser near ``T`` than an even grid (measured
    on flchain: at 25 steps detection AUC 0.54 vs 0.57 for an even grid; a grid denser near
    0 was worse). Rounding collisions are pushed down one step at a time, so any
    ``steps <= n_timesteps`` gives distinct times.
    """
    out = [n_timesteps]
    for k in range(1, steps + 1):
        raw = int(round(n_timesteps * (1 - (k / steps) ** TIME_GRID_POWER)))
        out.append(max(min(raw, out[-1] - 1), steps - k))
    return out


def reveal_steps(coins: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """The step (0-based) at which each masked span is revealed, from one uniform coin each.

    The chain reveals a span masked at ``t_k`` on the way to ``t_{k+1}`` with probability
    ``(m(t_k) - m(t_{k+1})) / m(t_k)``; the product of these says a span is still masked after
    step ``k`` with probability ``m(t_{k+1}) / m(t_0)`` (``m = 1 - a``, ``ab`` the schedule
    at the sampling times). So the reveal step is the number of steps whose survival share
    exceeds the coin, and every span is revealed by the last step (``t = 0``).
    """
    still_masked = (1 - ab[1:]) / (1 - ab[0])
    still_masked[-1] = 0.0
    return (still_masked.view(1, 1, -1) > coins.unsqueeze(2)).sum(dim=2)


def time_features(t: torch.Tensor, n_timesteps: int) -> torch.Tensor:
    """Sinusoidal features of ``t`` (shape ``(len(t), TIME_DIM)``), time scaled to [0, 1000]."""
    half = TIME_DIM // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    arg = (t.to(torch.float32) * (1000.0 / n_timesteps)).unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat([torch.cos(arg), torch.sin(arg)], dim=1)


class _Denoiser(nn.Module):
    """ReLU MLP over ``[noisy values, revealed one-hots, span mask flags]`` plus a timestep
    embedding; outputs ``[ε̂ for the value columns, logits for the softmax columns]``."""

    def __init__(self, n_features: int, n_soft: int, hidden_dims: Sequence[int],
                 wide: Sequence[tuple[int, int]] = (), wide_dim: int = WIDE_DIM) -> None:
        super().__init__()
        h0 = hidden_dims[0]
        self.time = nn.Sequential(nn.Linear(TIME_DIM, h0), nn.SiLU(), nn.Linear(h0, h0))
        # wide softmax spans (``wide``: their columns, the same in input and output):
        # embedded on the way in, low-rank logits on the way out
        self.embed = wide_embed(n_features + n_soft, wide, wide_dim)
        self.inp = nn.Linear(self.embed.n_out, h0)
        self.body = mlp([h0, *hidden_dims[1:]], activation=lambda: nn.ReLU(inplace=True))
        self.out = wide_head(hidden_dims[-1], n_features, wide, wide_dim)
        # ReLU, not SiLU: measured, SiLU cost about as much as the matmuls when sampling

    def embed_time(self, t: torch.Tensor, n_timesteps: int) -> torch.Tensor:
        return self.time(time_features(t, n_timesteps))

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        # one time for the batch (sampling): fold it into the bias. Not in training, where a
        # one-row batch must still run ``self.inp`` as a layer (DP-SGD's per-row clipping
        # hooks it)
        if t_emb.shape[0] == 1 and not self.training:
            h = torch.addmm(self.inp.bias + t_emb[0], x, self.inp.weight.t())
        else:
            h = self.inp(x) + t_emb
        return self.out(self.body(torch.relu_(h)))


class DDPMGenerator(BaseGenerator):
    """Denoising diffusion over the transformed table (see the module docstring).

    Parameters
    ----------
    schema:
        The table's schema.
    epochs, batch_size, lr:
        Passes over the training rows, rows per step, initial Adam learning rate (decayed
        linearly to zero over training). ``epochs="auto"`` (the default): 1,000 epochs
        while they take at most ``epoch_budget.max_steps`` steps (tables up to 40,960
        rows with the auto batch), then as many epochs as fit in that many steps (see
        :class:`~synthdata.models._params.EpochBudget`; under DP from the noisy count); an
        integer is used as given. ``batch_size="auto"`` takes an eighth of the rows,
        between ``MIN_AUTO_BATCH`` and ``MAX_AUTO_BATCH``: small tables then still get at
        least eight updates per epoch (measured on rotterdam, 2,087 rows: detection AUC 0.57
        with batches of 256 vs 0.72 with 1,024 at the same 1,000 epochs).
    hidden_dims:
        Hidden layer widths of the denoiser MLP.
    n_timesteps:
        Length ``T`` of the diffusion chain used in training.
    sampling_steps:
        Denoiser evaluations per sampled batch (DDIM-style for values, matching reveal
        schedule for discrete spans); at most ``n_timesteps``. Fewer is faster.
    numeric_encoding:
        ``"quantile"`` (default: numbers are normal scores) or ``"mode"`` (mode-specific
        normalisation: a scalar diffused as a value plus a mode span diffused as a
        category). Measured on flchain at 25 steps: detection AUC 0.54 quantile vs 0.66 mode
        (``benchmarks/results/ddpm_steps.md``).
    privacy:
        A ``DPConfig`` for DP-SGD on the whole denoiser (see the module docstring);
        ``None`` for a non-private fit.
    seed:
        Seed of every random draw of fit and sampling (local generators only).
    """

    name: ClassVar[str] = "ddpm"
    dp_training: ClassVar[str | None] = "dpsgd"
    # epochs="auto": 1,000 epochs up to 40,000 steps (40 per epoch: 40,960 rows at the auto
    # batch of 1,024); at 200k rows 204 epochs, a fit under 15 minutes on one core
    # (benchmarks/results/scale.md)
    epoch_budget: ClassVar[EpochBudget] = EpochBudget(full_epochs=1000, max_steps=40_000)
    fit_seconds_: float | None
    # categorical columns with more slots than this get an embedding in and low-rank logits
    # out (``_torch.WideEmbed`` / ``WideHead``, ``WIDE_DIM`` units); None (the default, not
    # yet measured for ddpm): one-hot layers only. Not a constructor parameter yet.
    wide_levels: int | None = None

    def __init__(self, schema: Schema, *, epochs: int | str = AUTO, batch_size: int | str = "auto",
                 lr: float = 2e-3, hidden_dims: Sequence[int] = (128, 128),
                 n_timesteps: int = 1000, sampling_steps: int = 25,
                 numeric_encoding: str = "quantile", privacy: Any = None,
                 seed: int | None = 0) -> None:
        self.schema, self.epochs, self.batch_size, self.lr = schema, epochs, batch_size, lr
        self.hidden_dims, self.n_timesteps, self.sampling_steps = hidden_dims, n_timesteps, sampling_steps
        self.numeric_encoding = numeric_encoding
        self.privacy, self.seed = privacy, seed

    def _transformer_options(self) -> dict[str, Any]:
        return {"discrete": "onehot"}

    # -- params -------------------------------------------------------------------------
    def _validate_params(self) -> None:
        super()._validate_params()
        if self.batch_size != "auto":
            check_ints(self, batch_size=self.batch_size)
        check_epochs(self)
        check_ints(self, n_timesteps=self.n_timesteps, sampling_steps=self.sampling_steps)
        self._positive(lr=self.lr)
        if not math.isfinite(self.lr):
            raise ConfigError(f"ddpm: parameter lr must be a positive number, got {self.lr!r}")
        check_dims(self, hidden_dims=self.hidden_dims)
        check_encoding(self)
        if self.sampling_steps > self.n_timesteps:
            raise ConfigError(f"ddpm: parameter sampling_steps ({self.sampling_steps}) must be at "
                              f"most n_timesteps ({self.n_timesteps})")

    def batch_rows(self, n: int) -> int:
        """Rows per training step for ``n`` training rows (resolves ``"auto"``)."""
        if self.batch_size == "auto":
            return int(np.clip(n // 8, MIN_AUTO_BATCH, MAX_AUTO_BATCH))
        return int(self.batch_size)

    # -- model ----------------------------------------------------------------------------
    def _build(self, generator: torch.Generator) -> _Denoiser:
        plan = self.plan_
        # the softmax part of input and output starts after the value columns
        wide = wide_blocks(self._soft_plan.soft_blocks(), self.wide_levels,
                           int(plan.value_cols.numel()))
        net = build_module(lambda: _Denoiser(plan.n_features, plan.n_soft, tuple(self.hidden_dims),
                                             wide, WIDE_DIM), generator)
        assert isinstance(net, _Denoiser)
        return net

    def _prepare_plan(self) -> None:
        plan = SpanPlan(self.transformer_.layout_)
        self.plan_ = plan
        # The denoiser's output is ordered [value columns, softmax columns] (so both parts
        # are slices); per-span operations on the softmax part use a plan of the softmax
        # spans alone, whose width groups keep their cost at the real number of levels.
        self._soft_plan = SpanPlan([s for s in self.transformer_.layout_
                                    if s.kind == Activation.SOFTMAX])
        # soft column -> its span, to spread per-span mask flags over one-hot columns
        span_of_col = torch.zeros(plan.n_features, dtype=torch.long)
        for s in plan.soft:
            span_of_col[s.start:s.start + s.width] = s.index
        self._soft_span = span_of_col[plan.soft_cols]

    def _revealed(self, codes: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """One-hot of ``codes`` over the softmax columns, zero on masked spans."""
        sp = self._soft_plan
        out = torch.zeros((codes.shape[0], sp.n_features))
        return out.scatter_(1, sp.starts.unsqueeze(0) + codes, (~masked).to(out.dtype))

    # -- fit ----------------------------------------------------------------------------
    def _fit(self, matrix: np.ndarray, rng: np.random.Generator, progress: Progress = no_progress) -> None:
        self._prepare_plan()
        with torch_threads():
            if self.privacy is not None:
                self._train_dp(matrix, rng, progress)
            else:
                self._train(matrix, rng, progress)

    def _train(self, matrix: np.ndarray, rng: np.random.Generator, progress: Progress) -> None:
        plan = self.plan_
        gen = make_torch_generator(rng)
        net = self._build(gen)
        ema = [p.detach().clone() for p in net.parameters()]
        values_all, codes_all, soft_all = self._training_tensors(matrix)
        self.clip_ = float(values_all.abs().max()) if values_all.numel() else 1.0
        n, n_val, n_soft = len(values_all), values_all.shape[1], plan.n_soft
        n_columns = max(1, n_val + n_soft)
        big_t = int(self.n_timesteps)
        ab_table = alpha_bar(torch.arange(big_t + 1), big_t)
        batch, steps, epochs, total_steps = self._schedule(n)
        opt = Adam(net.parameters(), lr=self.lr)
        self.history_: list[dict[str, float]] = []
        started = time.perf_counter()
        net.train()
        done = 0
        for epoch in range(epochs):
            perm = torch.randperm(n, generator=gen)
            vals_ep, codes_ep, soft_ep = values_all[perm], codes_all[perm], soft_all[perm]
            total = 0.0
            for i in range(steps):
                rows = slice(i * batch, (i + 1) * batch)
                total += self._train_step(net, opt, ema, (vals_ep[rows], codes_ep[rows],
                                                          soft_ep[rows]), gen, ab_table,
                                          self.lr * (1.0 - done / total_steps), n_columns)
                done += 1
            record_epoch(self.history_, {"epoch": epoch + 1, "loss": total / steps}, epochs,
                         progress, logger.debug, "ddpm")
        self._finish_training(net, ema, started)

    def _train_step(self, net: _Denoiser, opt: Adam, ema: list[torch.Tensor],
                    rows: tuple[torch.Tensor, torch.Tensor, torch.Tensor], gen: torch.Generator,
                    ab_table: torch.Tensor, lr: float, n_columns: int) -> float:
        """One Adam step at learning rate ``lr`` on a mini-batch ``(values, codes, soft
        one-hots)``, then the EMA update; the batch's loss (in memory and streaming fits)."""
        loss = self._row_loss(net, *rows, gen, ab_table).mean() / n_columns
        opt.lr = lr
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in net.parameters()], 1 - EMA_DECAY)
        return float(loss.detach())

    def _fit_stream(self, stream: Any, rng: np.random.Generator,
                    progress: Progress = no_progress) -> None:
        """Train on a table read in mini-batches (``synthdata.models.streaming``: ``stream``
        gives ``n_rows`` and ``minibatches(epoch, batch)``); the same schedule and step as
        :meth:`_train`. The sampler's clip is the largest absolute value of the first epoch
        (every row once), as in memory. No DP."""
        self._prepare_plan()
        with torch_threads():
            plan = self.plan_
            gen = make_torch_generator(rng)
            net = self._build(gen)
            ema = [p.detach().clone() for p in net.parameters()]
            n_columns = max(1, int(plan.value_cols.numel()) + plan.n_soft)
            big_t = int(self.n_timesteps)
            ab_table = alpha_bar(torch.arange(big_t + 1), big_t)
            batch, _, epochs, total_steps = self._schedule(int(stream.n_rows))
            opt = Adam(net.parameters(), lr=self.lr)
            self.history_ = []
            started = time.perf_counter()
            net.train()
            done, clip = 0, 0.0
            for epoch in range(epochs):
                total, steps = 0.0, 0
                for matrix in stream.minibatches(epoch, batch):
                    rows = self._training_tensors(matrix)
                    if epoch == 0 and rows[0].numel():
                        clip = max(clip, float(rows[0].abs().max()))
                    lr = self.lr * max(0.0, 1.0 - done / total_steps)
                    total += self._train_step(net, opt, ema, rows, gen, ab_table, lr, n_columns)
                    done += 1
                    steps += 1
                record_epoch(self.history_, {"epoch": epoch + 1, "loss": total / max(steps, 1)},
                             epochs, progress, logger.debug, "ddpm", "stream")
            self.clip_ = clip if plan.value_cols.numel() else 1.0
            self._finish_training(net, ema, started)

    def _schedule(self, n_rows: int) -> tuple[int, int, int, int]:
        """Batch size, steps per epoch, epochs and total steps for ``n_rows`` training rows
        (under DP the noisy count, so the schedule never reads the true n)."""
        batch = min(self.batch_rows(n_rows), n_rows)
        steps = math.ceil(n_rows / batch)
        epochs = resolve_epochs(self, self.epoch_budget, steps)
        return batch, steps, epochs, epochs * steps

    def training_epochs(self, n_rows: int) -> int:
        """Epochs a fit on ``n_rows`` training rows runs (resolves ``epochs="auto"``; under
        DP ``n_rows`` is the noisy count)."""
        return self._schedule(n_rows)[2]

    def _training_tensors(self, matrix: np.ndarray) -> tuple[torch.Tensor, torch.Tensor,
                                                             torch.Tensor]:
        """The training matrix as (values, category codes, soft one-hot columns)."""
        plan = self.plan_
        data = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))
        return data[:, plan.value_cols], plan.codes(data), data[:, plan.soft_cols]

    def _finish_training(self, net: _Denoiser, ema: list[torch.Tensor], started: float) -> None:
        """Load the EMA weights into ``net`` and keep it, in eval mode, as the fitted model."""
        with torch.no_grad():
            for p, e in zip(net.parameters(), ema, strict=True):
                p.copy_(e)
        self.fit_seconds_ = time.perf_counter() - started
        net.eval()
        self.net_ = net

    def _row_loss(self, net: _Denoiser, v0: torch.Tensor, c0: torch.Tensor, h0: torch.Tensor,
                  gen: torch.Generator, ab_table: torch.Tensor) -> torch.Tensor:
        """Per-row denoising loss (summed over columns, not yet divided by their number) of
        one batch at timesteps, value noise and span masks drawn from ``gen``."""
        big_t, n_val, n_soft = int(self.n_timesteps), v0.shape[1], self.plan_.n_soft
        b = len(v0)
        t = torch.randint(1, big_t + 1, (b,), generator=gen)
        ab = ab_table[t].unsqueeze(1)
        eps = torch.randn((b, n_val), generator=gen)
        vt = ab.sqrt() * v0 + (1 - ab).sqrt() * eps
        masked = torch.rand((b, n_soft), generator=gen) < (1 - ab)
        keep = (~masked)[:, self._soft_span].to(h0.dtype)
        x_in = torch.cat([vt, h0 * keep, masked.to(h0.dtype)], dim=1)
        out = net(x_in, net.embed_time(t, big_t))
        loss_rows = (out[:, :n_val] - eps).square().sum(dim=1)
        if n_soft:
            ce = self._soft_plan.span_nll(out[:, n_val:], c0)
            loss_rows = loss_rows + (ce * masked).sum(dim=1)
        return loss_rows

    def _train_dp(self, matrix: np.ndarray, rng: np.random.Generator, progress: Progress) -> None:
        """DP-SGD on the whole denoiser (see the module docstring)."""
        from synthdata.privacy.dpsgd import DPSGD

        plan = self.plan_
        net = self._build(make_torch_generator(rng))  # seeded init: reads no data
        ema = [p.detach().clone() for p in net.parameters()]
        values_all, codes_all, soft_all = self._training_tensors(matrix)
        self.clip_ = DP_VALUE_CLIP  # public: the largest training value is not
        n = len(values_all)
        n_plan = self._planning_rows(n)  # the noisy count: q and steps never read the true n
        n_columns = max(1, values_all.shape[1] + plan.n_soft)
        big_t = int(self.n_timesteps)
        ab_table = alpha_bar(torch.arange(big_t + 1), big_t)
        batch, steps, epochs, total_steps = self._schedule(n_plan)
        dp = DPSGD(self, net, step="model.ddpm.dp_sgd", expected_batch_size=batch, n_rows=n,
                   steps=total_steps, epsilon=self.dp_plan_.training_epsilon,
                   planned_rows=n_plan)
        # every draw inside the loop uses the DP-SGD run's secure generator: a seeded stream
        # would be advanced by the (private) Poisson batch sizes
        gen = dp.generator
        opt = Adam(net.parameters(), lr=self.lr)
        self.history_ = []
        started = time.perf_counter()
        net.train()
        done = 0
        try:
            for epoch in range(epochs):
                total = 0.0
                for _ in range(steps):
                    idx = dp.poisson_sample()
                    if len(idx):
                        loss_rows = self._row_loss(net, values_all[idx], codes_all[idx],
                                                   soft_all[idx], gen, ab_table)
                        (loss_rows.sum() / n_columns).backward()
                        total += float(loss_rows.detach().sum()) / (n_columns * batch)
                    opt.lr = self.lr * (1.0 - done / total_steps)
                    dp.step(opt)
                    done += 1
                    with torch.no_grad():
                        torch._foreach_lerp_(ema, [p.detach() for p in net.parameters()],
                                             1 - EMA_DECAY)
                record_epoch(self.history_, {"epoch": epoch + 1, "loss": total / steps}, epochs,
                             progress, logger.debug, "ddpm", "dp")
        finally:
            dp.close()
        dp.check_finished()
        self.dp_noise_multiplier_ = dp.noise_multiplier
        self.dp_sample_rate_ = dp.sample_rate
        self.dp_steps_ = dp.steps_done
        self._finish_training(net, ema, started)

    # -- sample -------------------------------------------------------------------------
    @staticmethod
    def _value_step(x_t: torch.Tensor, x0: torch.Tensor, x0_prev: torch.Tensor | None,
                    lam: torch.Tensor, k: int, ab_t: torch.Tensor, ab_s: torch.Tensor,
                    order: int) -> torch.Tensor:
        """One deterministic step of the values from time ``times[k]`` to ``times[k + 1]``.

        First order is DDIM (η = 0): ``x_s = (σ_s/σ_t) x_t + (α_s - α_t σ_s/σ_t) x̂_0``. Second
        order (DPM-Solver++(2M), Lu et al. 2022, data prediction, multistep) replaces
        ``x̂_0`` by ``(1 + 1/2r) x̂_0 - (1/2r) x̂_0'`` with ``x̂_0'`` the previous step's
        prediction and ``r`` the ratio of the last two steps in log-SNR: no extra denoiser
        call, a second-order error. The first step and the step to ``t = 0`` stay first order.
        """
        sig_t, sig_s = (1 - ab_t).sqrt(), (1 - ab_s).sqrt()
        if sig_s <= 0:                       # the final step lands on the prediction
            return x0
        d = x0
        if order >= 2 and x0_prev is not None and math.isfinite(float(lam[k + 1])):
            r = float((lam[k] - lam[k - 1]) / (lam[k + 1] - lam[k]))
            d = x0 + (x0 - x0_prev) / (2 * r)
        return (sig_s / sig_t) * x_t + (ab_s.sqrt() - ab_t.sqrt() * sig_s / sig_t) * d

    @torch.inference_mode()
    def _denoise_batch(self, n: int, gen: torch.Generator, fixed: list[tuple[int, int]],
                       order: int = 1, dense: bool = False) -> torch.Tensor:
        """``n`` rows of the transformed table, denoised from pure noise (see the module
        docstring, "Sampling").

        Every random draw is made up front from ``gen``: the starting noise, one reveal coin
        and one category coin per span. A span's reveal step follows from its coin alone
        (masked after step ``k`` with probability ``m(t_{k+1}) / m(t_0)``, the product of the
        per-step reveal probabilities), so the chain knows at every step which spans it
        reveals. The denoiser is then run in pieces (``dense=False``): the first layer's
        contribution of the one-hot and mask-flag inputs changes only when a span is
        revealed, so it is kept as a running sum (one weight column added and one removed per
        revealed span); the output layer computes the value columns every step and a span's
        logits only for the rows that reveal it at this step. Each span is drawn once per
        row, instead of every span at every step. ``dense=True`` runs the whole network at
        every step on the same draws (the reference the fast path is tested against).
        """
        plan, net, sp = self.plan_, self.net_, self._soft_plan
        big_t = int(self.n_timesteps)
        n_val, n_soft, n_oh = int(plan.value_cols.numel()), plan.n_soft, sp.n_features
        times = sampling_times(big_t, int(self.sampling_steps))
        n_steps = len(times) - 1
        ab_all = alpha_bar(torch.tensor(times), big_t)
        values = torch.randn((n, n_val), generator=gen)
        coins = torch.rand((n, 2 * n_soft), generator=gen)
        reveal_at = reveal_steps(coins[:, :n_soft], ab_all)
        codes = torch.zeros((n, n_soft), dtype=torch.long)
        for span, code in fixed:  # inpainting: conditioned spans are revealed from the start
            codes[:, span] = code
            reveal_at[:, span] = -1
        t_emb = net.embed_time(torch.tensor(times[:-1]), big_t)
        # log signal-to-noise ratio per time (inf at t = 0) for the multistep value update
        lam = 0.5 * (ab_all.double().log() - (1 - ab_all.double()).log())
        masked = reveal_at >= 0
        if not dense:  # the running sum of the first layer (plain input/output layers only)
            head = net.out
            assert isinstance(head, nn.Linear)
            w_in, w_out, b_out = net.inp.weight, head.weight, head.bias
            w_val, w_hot_t, w_flag_t = (w_in[:, :n_val].t(), w_in[:, n_val:n_val + n_oh].t(),
                                        w_in[:, n_val + n_oh:].t())
            # revealing span j as slot c: add the one-hot's weight column, remove the mask flag's
            w_reveal = w_hot_t - w_flag_t[self._soft_span]
            # first-layer input of the discrete part (bias included), kept up to date on reveal
            acc = torch.addmm(net.inp.bias, masked.to(values.dtype), w_flag_t)
            if fixed:
                acc += self._revealed(codes, masked) @ w_hot_t
        # the (row, span) pairs revealed at each step, grouped by step then span: one sort
        key = (reveal_at * n_soft + torch.arange(n_soft)).flatten()
        key_sorted, pair = torch.sort(key, stable=True)
        pair_rows, pair_span = pair // n_soft, pair % n_soft
        pair_coins = coins[:, n_soft:].flatten()[pair]
        bounds = torch.searchsorted(key_sorted, torch.arange(n_steps * n_soft + 1)).tolist()
        starts, widths = sp.starts.tolist(), sp.widths.tolist()
        x0_prev: torch.Tensor | None = None
        for k in range(n_steps):
            if dense:
                x_in = torch.cat([values, self._revealed(codes, masked),
                                  masked.to(values.dtype)], dim=1)
                out = net(x_in, t_emb[k:k + 1])
            else:
                pre = acc + t_emb[k] if n_val == 0 else torch.addmm(acc + t_emb[k], values, w_val)
                hidden = net.body(torch.relu_(pre))
                out = torch.addmm(b_out[:n_val], hidden, w_out[:n_val].t())
            if n_val:
                ab_t, ab_s = ab_all[k], ab_all[k + 1]
                eps = out[:, :n_val]
                x0 = ((values - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()).clamp_(-self.clip_, self.clip_)
                values = self._value_step(values, x0, x0_prev, lam, k, ab_t, ab_s, order)
                x0_prev = x0
            lo, hi = bounds[k * n_soft], bounds[(k + 1) * n_soft]
            if lo == hi:
                continue
            slots = torch.empty(hi - lo, dtype=torch.long)
            for j in range(n_soft):
                a, b = bounds[k * n_soft + j], bounds[k * n_soft + j + 1]
                if a == b:
                    continue
                rows = pair_rows[a:b]
                cols = slice(n_val + starts[j], n_val + starts[j] + widths[j])
                if dense:
                    logits = out[:, cols].index_select(0, rows)
                else:
                    logits = torch.addmm(b_out[cols], hidden.index_select(0, rows), w_out[cols].t())
                cdf = torch.softmax(logits, dim=1).cumsum_(dim=1)
                drawn = (cdf < pair_coins[a:b].unsqueeze(1)).sum(dim=1).clamp_(max=widths[j] - 1)
                slots[a - lo:b - lo] = drawn + starts[j]
            codes.view(-1)[pair[lo:hi]] = slots - sp.starts[pair_span[lo:hi]]
            masked.view(-1)[pair[lo:hi]] = False
            if not dense:
                acc.index_add_(0, pair_rows[lo:hi], w_reveal.index_select(0, slots))
        result = plan.one_hot(codes, n)
        if n_val:
            result[:, plan.value_cols] = values
        return result

    def _sample_matrix(self, n: int, rng: np.random.Generator,
                       conditions: dict[str, int] | None) -> np.ndarray:
        """Chunks of ``SAMPLE_ROWS`` rows, each with its own generator seeded from ``rng`` in
        order, denoised in parallel by ``threads`` workers of one torch thread each.

        Whole chunks per worker, not torch's intra-op threads: every operation of the chain
        is small, and a fork-join per operation waits for the slowest thread (measured on a
        busy machine: 1,702 rows per CPU second with two intra-op threads, 49,269 with one).
        The output depends on the seed only, not on the number of threads.
        """
        from concurrent.futures import ThreadPoolExecutor

        fixed = [(self.plan_.soft_index(col), int(code)) for col, code in (conditions or {}).items()]
        sizes = [min(SAMPLE_ROWS, n - i) for i in range(0, n, SAMPLE_ROWS)]
        gens = [make_torch_generator(rng) for _ in sizes]
        workers = min(default_threads(), len(sizes))

        # the running-sum path reads the plain first and last layers' weights; with wide-span
        # embeddings / low-rank heads the whole network runs at every step instead
        dense = has_wide_layers(self.net_.state_dict())

        def chunk(k: int) -> torch.Tensor:
            return self._denoise_batch(sizes[k], gens[k], fixed, SOLVER_ORDER, dense=dense)

        with torch_threads(1):
            if workers > 1:
                with ThreadPoolExecutor(workers) as pool:
                    parts = list(pool.map(chunk, range(len(sizes))))
            else:
                parts = [chunk(k) for k in range(len(sizes))]
        return torch.cat(parts).numpy().astype(np.float64)

    # -- state --------------------------------------------------------------------------
    def _get_torch_state(self) -> dict[str, Any]:
        return {"net": self.net_.state_dict()}

    def _set_torch_state(self, state: dict[str, Any]) -> None:
        self._prepare_plan()
        # not a constructor parameter, so not in the archive's params: read it off the
        # weights (the narrowest embedded span is just above the threshold that was used)
        widths = [v.shape[1] for k, v in state["net"].items() if k.startswith("embed.tables.")]
        self.wide_levels = min(widths) - 1 if widths else None
        gen = torch.Generator().manual_seed(0)  # weights are overwritten just below
        net = self._build(gen)
        net.load_state_dict(state["net"])
        net.eval()
        self.net_ = net

    def _get_extra(self) -> dict[str, Any]:
        return {"clip": self.clip_, "fit_seconds": self.fit_seconds_, "history": self.history_}

    def _set_extra(self, extra: dict[str, Any]) -> None:
        self.clip_ = float(extra["clip"])
        self.fit_seconds_ = extra.get("fit_seconds")
        self.history_ = extra.get("history", [])
