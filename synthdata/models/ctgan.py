"""CTGAN-style generator: a conditional Wasserstein GAN over the transformed layout.

Ideas from Xu et al., "Modeling Tabular Data using Conditional GAN" (NeurIPS 2019), our
own implementation:

- **Condition vector** over the discrete columns' CATEGORY spans (categorical/boolean
  columns, including their missing slot). Mode indicators of numbers and missing
  indicators of numbers are *not* conditioned on: users can only condition on discrete
  columns, and leaving them out keeps the vector short.
- **Training-by-sampling**: per row, a discrete column uniformly, a category with
  probability ∝ ``log(1 + count)`` (``log_frequency=True``; raw counts otherwise), then a
  real row holding that category — vectorised index tables (see
  :class:`~synthdata.models._torch.ConditionSampler`).
- **Generator**: residual blocks ``h ← [relu(bn(W h)), h]`` (one 128-wide block by default);
  output activations per span — linear for normal-score numbers (the default
  ``numeric_encoding="quantile"``), ``tanh`` for mode-specific scalars (``"mode"``),
  Gumbel-softmax (τ = 0.2) for softmax spans. Its loss adds the
  cross-entropy between the conditioned span's logits and the condition, so the output
  honours the condition.
- **Discriminator** (critic): PacGAN — ``pac`` rows are concatenated into one input, which
  penalises mode collapse; LeakyReLU and seeded dropout, no normalisation layers. Its first
  layer is held split (data weight, condition table): the condition one-hots of a step,
  shared by its real and fake packs, cost a lookup instead of a product (``_PackedFirst``);
  the generator likewise looks up its layers' condition columns. WGAN loss
  with gradient penalty (``gradient_penalty`` = λ; 0 disables it). The critic has only
  Linear layers so DP-SGD (opacus, no packing, no penalty) can wrap it later.
- **Sampling** feeds condition vectors: for ``conditions`` the requested category of each
  conditioned column is set; each softmax span is drawn from its softmax. Without
  conditions, one discrete column per row is set to a category drawn by its real frequency.
  With several conditions, the condition vector sets all of them (one-hot within each
  column); rows whose output disagrees are re-drawn in a bounded number of vectorised
  rounds, so every returned row matches.

Early stopping (``early_stopping=True``): every ``EVAL_EVERY`` epochs a sample is compared
with ``validation_share`` of held-out training rows on per-span marginals (total variation
of softmax spans, a quantile distance for values); training stops after ``patience``
checks without improvement and keeps the best generator. Off by default.

Differential privacy (``privacy=DPConfig(...)``): DP-SGD on the critic only
(:class:`~synthdata.privacy.dpsgd.DPSGD`: Poisson sampling, per-row clipping, Gaussian noise
from fresh OS entropy -- as is every draw of the DP training loop -- σ calibrated and the
ledger charged once for the planned ``epochs × (n // batch_size) × discriminator_steps``
steps before training). The generator only learns through the private critic and the DP
condition frequencies, so it is post-processing. Under DP the critic uses ``pac = 1`` and no gradient penalty (whatever
``pac``/``gradient_penalty`` say: both mix rows inside one per-sample gradient), and
training-by-sampling is replaced:

- real rows come from the Poisson sample; each real row's condition is its *own* category
  in a discrete column drawn uniformly per row;
- fake rows (a fixed ``batch_size`` per step, so their number does not depend on the
  sample) get a column drawn uniformly and a category drawn from *DP frequencies*: a noisy
  histogram of every discrete column's codes (Gaussian, sensitivity 1 per column), charged
  to the ledger as ``model.ctgan.condition_frequencies[col]`` with ``DP_MARGINAL_SHARE`` of
  the training ε (the rest goes to DP-SGD). ``log_frequency`` is ignored under DP (the
  critic must see the same condition distribution for real and fake rows);
- unconditional sampling draws conditions from the same DP frequencies.
No early stopping under DP (it would compare with held-out real rows).
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
    check_no_dp_early_stopping,
    check_nonnegative,
    resolve_epochs,
)
from synthdata.models._torch import (
    SAMPLE_CHUNK,
    WIDE_DIM,
    Adam,
    ConditionSampler,
    SpanPlan,
    TrainingRecord,
    build_module,
    check_wide,
    has_wide_layers,
    mlp,
    record_epoch,
    set_dropout_generator,
    torch_threads,
    wide_blocks,
    wide_embed,
    wide_head,
)
from synthdata.models.base import BaseGenerator, Progress, no_progress
from synthdata.privacy.dpsgd import DPSGD
from synthdata.schema.model import Schema

logger = logging.getLogger(__name__)

GUMBEL_TAU = 0.2
ADAM_BETAS = (0.5, 0.9)
WEIGHT_DECAY = 1e-6
DROPOUT = 0.5
EVAL_EVERY = 5
EVAL_ROWS = 5_000
MAX_CONDITION_ROUNDS = 20
DP_MARGINAL_SHARE = 0.1  # of the training ε, for the condition frequencies (DP only)


class _Residual(nn.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)
        self.bn = nn.BatchNorm1d(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.relu(self.bn(self.fc(x))), x], dim=1)


class _Generator(nn.Module):
    def __init__(self, n_in: int, dims: Sequence[int], n_out: int,
                 wide_in: Sequence[tuple[int, int]] = (), wide_out: Sequence[tuple[int, int]] = (),
                 wide_dim: int = WIDE_DIM, n_cond: int = 0) -> None:
        super().__init__()
        # wide condition blocks are embedded (the residual blocks then carry the embedding,
        # not the one-hot), wide output spans get low-rank logits
        self.embed = wide_embed(n_in, wide_in, wide_dim)
        blocks, width = [], self.embed.n_out
        for d in dims:
            blocks.append(_Residual(width, d))
            width += d
        self.blocks = nn.Sequential(*blocks)
        self.out = wide_head(width, n_out, wide_out, wide_dim)
        self.n_cond = n_cond
        # the input's condition tail is one-hot: its columns of every layer are a row lookup
        self.fast = not self.embed.blocks and isinstance(self.out, nn.Linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(self.embed(x)))

    def run(self, z: torch.Tensor, option: torch.Tensor | None) -> torch.Tensor:
        """``forward(cat([z, one_hot(option)]))`` (``option``: each row's condition option,
        ``None`` when the table has no discrete column) without the one-hot block.

        The condition tail (463 columns on covid_wide) runs through the first residual
        layer and, carried by the residual concatenation, through the output layer (655
        inputs, 463 of them the condition): as a dense product it was two thirds of those
        layers' products and of their weight gradients. Here each layer multiplies the
        dense part and adds its condition columns picked by ``option`` (a gather; its
        gradient an index_add). Same parameters, same function.
        """
        if option is None or not self.n_cond:
            return self(z)
        if not self.fast:
            return self(torch.cat([z, _one_hot(option, self.n_cond)], dim=1))
        x = z
        for block in self.blocks:
            assert isinstance(block, _Residual)
            x = torch.cat([torch.relu(block.bn(_onehot_tail_linear(block.fc, x, option))), x],
                          dim=1)
        assert isinstance(self.out, nn.Linear)
        return _onehot_tail_linear(self.out, x, option)


def _onehot_tail_linear(layer: nn.Linear, x: torch.Tensor, option: torch.Tensor) -> torch.Tensor:
    """``layer(cat([x, one_hot(option)]))``: the dense columns as a product, the one-hot
    tail as a lookup of the weight's column ``option`` per row."""
    k = x.shape[1]
    w = layer.weight
    return (nn.functional.linear(x, w[:, :k], layer.bias)
            + torch.index_select(w[:, k:].t(), 0, option))


def _one_hot(option: torch.Tensor, width: int) -> torch.Tensor:
    out = torch.zeros((option.shape[0], width))
    out.scatter_(1, option.unsqueeze(1), 1.0)
    return out


class _PackedFirst(nn.Module):
    """The critic's first layer over packs of ``pac`` rows ``[data | one-hot condition]``,
    held as two weights, both ``(inputs, units)``: ``weight`` ``(pac x n_data, units)`` over
    the packed data columns and ``table`` ``(pac x n_cond, units)`` whose row ``r x n_cond
    + o`` is the weight of condition option ``o`` in the pack's row ``r``. (Stored inputs
    first, the products ``x @ weight`` and the weight gradient ``x.T @ δ`` run 25-35%
    faster than with torch's ``(units, inputs)`` layout: 0.52 vs 0.75 ms and 0.38 vs 0.49
    ms for 50 packs on covid_wide, one thread.)

    The same function as one ``nn.Linear(pac x (n_data + n_cond), units)`` (and the same
    initial values: :meth:`seeded_init` draws that layer's weight and splits it), but the
    condition's part of the product is a lookup of ``pac`` table rows per pack
    (:meth:`condition`), which the fake, real and mixed packs of a critic step share.
    """

    def __init__(self, n_data: int, n_cond: int, units: int, pac: int) -> None:
        super().__init__()
        self.n_data, self.n_cond, self.pac = n_data, n_cond, pac
        self.weight = nn.Parameter(torch.empty((pac * n_data, units)))
        # no table without condition columns (Adam wants a gradient for every parameter)
        self.table = nn.Parameter(torch.empty((pac * n_cond, units))) if n_cond else None
        self.bias = nn.Parameter(torch.empty(units))

    def seeded_init(self, generator: torch.Generator) -> None:
        """PyTorch's ``nn.Linear`` scheme on the whole layer (Kaiming-uniform weight,
        uniform bias in ±1/sqrt(fan-in)), drawn from ``generator``, then split."""
        units, fan_in = self.bias.shape[0], self.pac * (self.n_data + self.n_cond)
        full = torch.empty((units, fan_in))
        nn.init.kaiming_uniform_(full, a=math.sqrt(5), generator=generator)
        nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in),
                         generator=generator)
        w3 = full.view(units, self.pac, -1)
        self.weight.copy_(w3[:, :, :self.n_data].permute(1, 2, 0).reshape(-1, units))
        if self.table is not None:
            self.table.copy_(w3[:, :, self.n_data:].permute(1, 2, 0).reshape(-1, units))

    def condition(self, option: torch.Tensor | None) -> torch.Tensor:
        """The bias plus the packed condition one-hots' product, ``(packs, units)`` (one
        row, the bias, when the table has no discrete column): a gather of ``pac`` table
        rows per pack, its gradient an index_add."""
        if option is None or self.table is None:
            return self.bias.unsqueeze(0)
        rows = option.view(-1, self.pac) + torch.arange(self.pac) * self.n_cond
        picked = torch.index_select(self.table, 0, rows.reshape(-1))
        return picked.view(-1, self.pac, self.table.shape[1]).sum(dim=1) + self.bias

    def data(self, rows: torch.Tensor) -> torch.Tensor:
        """The product over data rows (``pac`` consecutive rows per pack), no bias."""
        return rows.reshape(-1, self.weight.shape[0]) @ self.weight

    def input_gradient_norm(self, delta: torch.Tensor) -> torch.Tensor:
        """Per pack, the norm of the gradient with respect to the packed input (data and
        condition columns) given ``delta``, the gradient at this layer's output."""
        sq = (delta @ self.weight.t()).square().sum(dim=1)
        if self.table is not None:
            sq = sq + (delta @ self.table.t()).square().sum(dim=1)
        return sq.sqrt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dense packed input ``(packs, pac x (n_data + n_cond))``, rows side by side."""
        x3 = x.view(x.shape[0], self.pac, -1)
        out = self.data(x3[:, :, :self.n_data]) + self.bias
        if self.table is not None:
            out = out + x3[:, :, self.n_data:].reshape(x.shape[0], -1) @ self.table
        return out


class _Critic(nn.Module):
    def __init__(self, n_in: int, dims: Sequence[int], pac: int,
                 wide_in: Sequence[tuple[int, int]] = (), wide_dim: int = WIDE_DIM,
                 n_cond: int | None = None) -> None:
        super().__init__()
        self.pac = pac
        self.embed = wide_embed(n_in, wide_in, wide_dim)  # per row, before packing
        n_row = self.embed.n_out
        self.body = mlp([n_row * pac, *dims], activation=lambda: nn.LeakyReLU(0.2), dropout=DROPOUT)
        self.out = nn.Linear(dims[-1], 1)
        # split first layer (see _critic_loss): a row is [data | one-hot condition], the
        # condition its last n_cond columns; not for embedded (wide) inputs nor under DP
        # (n_cond None: opacus computes per-sample gradients of plain Linear layers)
        self.fast = n_cond is not None and not self.embed.blocks
        if self.fast:
            assert n_cond is not None
            self.body[0] = _PackedFirst(n_in - n_cond, n_cond, int(dims[0]), pac)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        return self.out(self.body(x.reshape(-1, x.shape[1] * self.pac)))

    @property
    def first(self) -> _PackedFirst:
        layer = self.body[0]
        assert isinstance(layer, _PackedFirst)
        return layer

    def head(self, first: torch.Tensor) -> torch.Tensor:
        """The critic after its first layer (``first``: its output, packs x units)."""
        return self.out(self.body[1:](first))


class CTGANGenerator(TrainingRecord, BaseGenerator):
    """Conditional tabular GAN (WGAN-GP, PacGAN, training-by-sampling).

    Parameters
    ----------
    schema:
        The table's schema.
    epochs, batch_size:
        Passes over the training rows (``n_rows // batch_size`` steps each) and rows per
        step; ``batch_size`` must be a multiple of ``pac``. ``epochs="auto"`` (the
        default): 300 epochs while they take at most ``epoch_budget.max_steps`` generator
        steps (tables up to 40,000 rows at ``batch_size=500``), then as many epochs as fit
        in that many steps (see :class:`~synthdata.models._params.EpochBudget`; under DP
        the steps come from the noisy count). An integer is used as given.
    generator_lr, discriminator_lr:
        Adam learning rates (betas 0.5, 0.9).
    embedding_dim, generator_dims, discriminator_dims:
        Noise size and hidden widths.
    numeric_encoding:
        ``"quantile"`` (default; numbers are normal scores, linear outputs) or ``"mode"``
        (mode-specific normalisation: ``tanh`` scalar plus a mode indicator span).
    pac:
        Rows per critic input (PacGAN); 1 disables packing.
    discriminator_steps:
        Critic updates per generator update.
    gradient_penalty:
        Weight of the WGAN gradient penalty; 0 disables it.
    log_frequency:
        Draw training conditions by log-frequency (rare categories more often).
    early_stopping, validation_share, patience:
        See the module docstring; off by default.
    wide_levels, wide_dim:
        Categorical columns with more than ``wide_levels`` slots are embedded in
        ``wide_dim`` units wherever they enter a network (the generator's condition, the
        critic's row and condition) and get low-rank logits (``wide_dim`` units, then the
        levels) on the generator's output (``None``, the default: plain one-hot layers;
        on covid_wide, 5 columns of 58-102 levels, the embedded CTGAN was slower and its
        wide columns' distances worse, benchmarks/results/wide_embed.md).
    verbose:
        Log the losses of every epoch at INFO level (DEBUG otherwise).
    privacy:
        A ``DPConfig`` for DP-SGD on the critic (see the module docstring; forces
        ``pac=1`` and no gradient penalty); ``None`` for a non-private fit.
    seed:
        Seed of every random draw of fit and sampling (local generators only).
    """

    name: ClassVar[str] = "ctgan"
    dp_training: ClassVar[str | None] = "dpsgd"
    # epochs="auto": 300 epochs up to 24,000 generator steps (80 per epoch: 40,000 rows at
    # the default batch); measured at 200k x 50 (benchmarks/results/scale.md)
    epoch_budget: ClassVar[EpochBudget] = EpochBudget(full_epochs=300, max_steps=24_000)

    def __init__(self, schema: Schema, *, epochs: int | str = AUTO, batch_size: int = 500,
                 generator_lr: float = 2e-4, discriminator_lr: float = 2e-4, embedding_dim: int = 64,
                 generator_dims: Sequence[int] = (128,),
                 discriminator_dims: Sequence[int] = (128, 128), numeric_encoding: str = "quantile",
                 pac: int = 10,
                 discriminator_steps: int = 1, gradient_penalty: float = 10.0,
                 log_frequency: bool = True, early_stopping: bool = False,
                 validation_share: float = 0.1, patience: int = 10, verbose: bool = False,
                 wide_levels: int | None = None, wide_dim: int = WIDE_DIM,
                 privacy: Any = None, seed: int | None = 0) -> None:
        self.schema, self.epochs, self.batch_size = schema, epochs, batch_size
        self.generator_lr, self.discriminator_lr = generator_lr, discriminator_lr
        self.embedding_dim, self.generator_dims = embedding_dim, generator_dims
        self.discriminator_dims, self.pac = discriminator_dims, pac
        self.numeric_encoding = numeric_encoding
        self.discriminator_steps, self.gradient_penalty = discriminator_steps, gradient_penalty
        self.log_frequency, self.early_stopping = log_frequency, early_stopping
        self.validation_share, self.patience, self.verbose = validation_share, patience, verbose
        self.wide_levels, self.wide_dim = wide_levels, wide_dim
        self.privacy, self.seed = privacy, seed

    # -- params -------------------------------------------------------------------------
    def _validate_params(self) -> None:
        super()._validate_params()
        check_epochs(self)
        check_ints(self, batch_size=self.batch_size,
                    embedding_dim=self.embedding_dim, pac=self.pac,
                    discriminator_steps=self.discriminator_steps, patience=self.patience)
        self._positive(generator_lr=self.generator_lr, discriminator_lr=self.discriminator_lr)
        check_dims(self, generator_dims=self.generator_dims,
                    discriminator_dims=self.discriminator_dims)
        check_nonnegative(self, gradient_penalty=self.gradient_penalty)
        check_encoding(self)
        if self.batch_size % self.pac:
            raise ConfigError(f"{self.name}: parameter batch_size ({self.batch_size}) must be a "
                              f"multiple of pac ({self.pac})")
        if not isinstance(self.validation_share, (int, float)) or not 0 < self.validation_share < 0.5:
            raise ConfigError(f"{self.name}: parameter validation_share must be in (0, 0.5), got "
                              f"{self.validation_share!r}")
        for flag in ("log_frequency", "early_stopping", "verbose"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{self.name}: parameter {flag} must be true or false, got "
                                  f"{getattr(self, flag)!r}")
        check_no_dp_early_stopping(self)
        check_wide(self)

    def training_epochs(self, n_rows: int) -> int:
        """Epochs a fit on ``n_rows`` training rows runs (resolves ``epochs="auto"``; under
        DP ``n_rows`` is the noisy count)."""
        steps = max(int(n_rows) // max(1, min(int(self.batch_size), int(n_rows))), 1)
        return resolve_epochs(self, self.epoch_budget, steps)

    # -- model ----------------------------------------------------------------------------
    def _build(self, gen: torch.Generator, pac: int | None = None, split: bool = True
               ) -> tuple[_Generator, _Critic]:
        """The generator and the critic (``split``: the critic's first layer as a
        :class:`_PackedFirst`; DP-SGD builds with ``split=False``)."""
        n_feat, n_cond = self.plan_.n_features, self.n_options_
        pac = int(self.pac) if pac is None else pac
        emb, dim, levels = int(self.embedding_dim), int(self.wide_dim), self.wide_levels
        sampler = self.sampler_
        cond = list(zip(sampler.offsets.tolist(), sampler.widths.tolist(), strict=True))
        out = wide_blocks(self.plan_.soft_blocks(), levels)
        g = build_module(lambda: _Generator(emb + n_cond, tuple(self.generator_dims), n_feat,
                                            wide_blocks(cond, levels, emb), out, dim,
                                            n_cond=n_cond), gen)
        d = build_module(lambda: _Critic(n_feat + n_cond, tuple(self.discriminator_dims), pac,
                                         out + wide_blocks(cond, levels, n_feat), dim,
                                         n_cond=n_cond if split else None), gen)
        assert isinstance(g, _Generator) and isinstance(d, _Critic)
        return g, d

    def _generator_loss(self, g_net: nn.Module, d_net: nn.Module, sampler: Any,
                        cond: torch.Tensor, column: torch.Tensor, category: torch.Tensor,
                        gen: torch.Generator, fast: bool = False) -> torch.Tensor:
        """Generator step loss: minus the critic's score of fresh fakes (Gumbel-softmax
        spans), plus the cross-entropy tying each row's span to its condition.

        ``fast``: the networks take the condition as option indices (``_Generator.run``,
        :class:`_PackedFirst`; not under DP, whose critic opacus wraps)."""
        plan, batch = self.plan_, cond.shape[0]
        z = torch.randn((batch, int(self.embedding_dim)), generator=gen)
        if fast and isinstance(g_net, _Generator) and isinstance(d_net, _Critic) and d_net.fast:
            option = _options(sampler, column, category)
            raw = g_net.run(z, option)
            fake = plan.activate(raw, tau=GUMBEL_TAU, generator=gen)
            loss = -d_net.head(d_net.first.data(fake) + d_net.first.condition(option)).mean()
        else:
            raw = g_net(torch.cat([z, cond], dim=1))
            fake = plan.activate(raw, tau=GUMBEL_TAU, generator=gen)
            loss = -d_net(torch.cat([fake, cond], dim=1)).mean()
        if sampler.n_columns:
            span = sampler.span_index[column]
            loss = loss - plan.log_prob(raw, span, category).mean()
        return loss

    def _critic_loss(self, critic: _Critic, real: torch.Tensor, fake: torch.Tensor,
                     cond: torch.Tensor, option: torch.Tensor | None,
                     gen: torch.Generator) -> torch.Tensor:
        """WGAN critic loss ``mean D(fake) - mean D(real)`` plus the gradient penalty.

        ``real`` and ``fake`` are data rows (no condition) that share the condition rows
        ``cond`` (one-hot; ``option`` their hot slots, ``None`` without discrete columns).
        The penalty is ``λ (‖∇D(mixed)‖ - 1)²`` per pack, ``mixed`` interpolating the real
        and fake packs (condition included: the same in both) with one weight per pack;
        the gradient covers the whole pack input, data and condition.

        The first layer is split (:class:`_PackedFirst`): the condition's part of its
        product is a gather of ``pac`` table rows per pack, computed ONCE and added to the
        fake, real and mixed packs (they share it); the dense product covers the data
        columns only (on covid_wide 4,630 of the pack's 9,260 inputs), for the forwards,
        the weight gradients and the generator step's input gradient. The penalty's input
        gradient is ``δ [Wd | T]ᵀ`` with ``δ`` the gradient at the first layer's output
        (the value autograd gives with respect to the packed input). The fake and real
        packs go through one forward; the mixed ones through a second (the penalty's
        double backward then covers the mixed packs only). A critic without the split
        (embedded wide input columns) runs the dense forward on ``[rows | cond]``.
        """
        pac, batch = int(self.pac), real.shape[0]
        n_packs = batch // pac
        penalize = self.gradient_penalty > 0
        # one interpolation weight per pack, repeated over its rows
        alpha = (torch.rand((n_packs, 1), generator=gen).repeat_interleave(pac, dim=0)
                 if penalize else None)
        if not critic.fast:
            real, fake = torch.cat([real, cond], dim=1), torch.cat([fake, cond], dim=1)
            out = critic(torch.cat([fake, real]))
            if alpha is None:
                return out[:n_packs].mean() - out[n_packs:].mean()
            mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
            norm = grad.reshape(n_packs, -1).norm(dim=1)
        else:
            layer = critic.first
            shared = layer.condition(option)
            first = layer.data(torch.cat([fake, real])).view(2, n_packs, -1) + shared
            out = critic.head(first.reshape(2 * n_packs, -1))
            if alpha is None:
                return out[:n_packs].mean() - out[n_packs:].mean()
            first = layer.data(alpha * real + (1 - alpha) * fake) + shared
            (delta,) = torch.autograd.grad(critic.head(first).sum(), first, create_graph=True)
            norm = layer.input_gradient_norm(delta)
        penalty = self.gradient_penalty * (norm - 1).square().mean()
        return out[:n_packs].mean() - out[n_packs:].mean() + penalty

    # -- fit ----------------------------------------------------------------------------
    def _fit(self, matrix: np.ndarray, rng: np.random.Generator, progress: Progress = no_progress) -> None:
        self.plan_ = SpanPlan(self.transformer_.layout_)
        with torch_threads():
            if self.privacy is not None:
                self._train_dp(matrix, rng, progress)
            else:
                self._train(matrix, rng, progress)

    def _dp_sampler(self, codes: torch.Tensor, eps_marginals: float) -> ConditionSampler:
        """A condition sampler whose frequencies are DP (noisy histograms on the ledger)."""
        from synthdata.privacy import accounting as acc
        from synthdata.privacy.mechanisms import dp_histogram

        plan = self.plan_
        # built from a dummy row: nothing in it is derived from the data
        sampler = ConditionSampler(plan, torch.zeros((1, plan.n_soft), dtype=torch.long))
        if sampler.n_columns == 0:
            return sampler
        ledger, dplan = self.ledger_, self.dp_plan_
        rho_now = ledger.composition().zcdp_rho
        # the zCDP part may grow from the preprocessing ε to that plus eps_marginals (at the
        # plan's conversion δ, which the ledger never undercuts)
        rho_all = acc.rho_for_epsilon(dplan.preprocessing_epsilon + eps_marginals,
                                      dplan.conversion_delta)
        rho_col = (rho_all - rho_now) / sampler.n_columns
        if rho_col <= 0:
            from synthdata.errors import PrivacyBudgetError

            raise PrivacyBudgetError("ctgan: no budget left for the DP condition frequencies")
        freq = torch.zeros_like(sampler.freq_probs)
        for j, span in enumerate(sampler.spans):
            col_codes = codes[:, span.index].numpy()
            counts = dp_histogram(col_codes, list(range(span.width)), rho_col, ledger,
                                  f"model.ctgan.condition_frequencies[{span.column}]")
            counts = counts + 1e-3  # never an all-zero row; post-processing
            freq[j, :span.width] = torch.from_numpy(counts / counts.sum()).to(freq.dtype)
        sampler.freq_probs = freq
        sampler.cat_probs = freq.clone()
        sampler.counts = None
        return sampler

    def _train_dp(self, matrix: np.ndarray, rng: np.random.Generator, progress: Progress) -> None:
        """DP-SGD on the critic; the generator is post-processing (see the module docstring)."""
        plan = self.plan_
        data = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))
        codes = plan.codes(data)
        n = len(data)
        n_plan = self._planning_rows(n)  # the noisy count: q and steps never read the true n
        batch = min(int(self.batch_size), n_plan)
        steps = max(n_plan // batch, 1)
        d_steps = int(self.discriminator_steps)
        epochs = self.training_epochs(n_plan)
        ledger = self.ledger_
        n_discrete = sum(1 for s in plan.soft if s.role.name == "CATEGORY")
        share = DP_MARGINAL_SHARE if n_discrete else 0.0
        eps_sgd = self.dp_plan_.training_epsilon * (1.0 - share)
        # hold the DP-SGD part first, so a plan that cannot fit fails before any data is read
        ledger.reserve("model.ctgan.dp_sgd", epsilon=eps_sgd)
        sampler = self._dp_sampler(codes, self.dp_plan_.training_epsilon * share)
        self.sampler_ = sampler
        self.n_options_ = sampler.n_options
        # seeded init (reads no data); a dense first layer: opacus hooks nn.Linear
        g_net, d_net = self._build(make_torch_generator(rng), pac=1, split=False)
        dp = DPSGD(self, d_net, step="model.ctgan.dp_sgd", expected_batch_size=batch, n_rows=n,
                   steps=epochs * steps * d_steps, epsilon=eps_sgd, planned_rows=n_plan)
        # every draw of the loop (fakes, Gumbel noise, dropout, conditions) uses the run's
        # secure generator: a seeded stream would be advanced by the private Poisson batch
        # sizes, tying later steps to the data outside the accounting
        gen = dp.generator
        set_dropout_generator(d_net, gen)
        ledger.release("model.ctgan.dp_sgd")
        opt_g = Adam(g_net.parameters(), lr=self.generator_lr, betas=ADAM_BETAS,
                     weight_decay=WEIGHT_DECAY)
        opt_d = Adam(d_net.parameters(), lr=self.discriminator_lr, betas=ADAM_BETAS,
                     weight_decay=WEIGHT_DECAY)
        emb = int(self.embedding_dim)
        log = logger.info if self.verbose else logger.debug
        self.history_ = []
        started = time.perf_counter()
        d_params = list(d_net.parameters())

        def fake_conditions(m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            if not sampler.n_columns:
                zero = torch.zeros(m, dtype=torch.long)
                return torch.zeros((m, 0)), zero, zero
            return sampler.draw_by_frequency(m, gen)

        try:
            for epoch in range(epochs):
                g_net.train()
                d_net.train()
                sum_d = sum_g = 0.0
                for _ in range(steps):
                    for p in d_params:
                        p.requires_grad_(True)
                    for _ in range(d_steps):
                        idx = dp.poisson_sample()
                        cond_f, _, _ = fake_conditions(batch)
                        z = torch.randn((batch, emb), generator=gen)
                        with torch.no_grad():
                            fake = plan.activate(g_net(torch.cat([z, cond_f], dim=1)),
                                                 tau=GUMBEL_TAU, generator=gen)
                        if sampler.n_columns:  # each real row conditioned on its own category
                            col = torch.randint(sampler.n_columns, (len(idx),), generator=gen)
                            cat = codes[idx][torch.arange(len(idx)), sampler.span_index[col]]
                            cond_r = sampler.vector(sampler.offsets[col] + cat)
                        else:
                            cond_r = torch.zeros((len(idx), 0))
                        x_in = torch.cat([torch.cat([fake, cond_f], dim=1),
                                          torch.cat([data[idx], cond_r], dim=1)])
                        out = d_net(x_in).squeeze(1)
                        loss_d = out[:batch].sum() - out[batch:].sum()
                        loss_d.backward()
                        dp.step(opt_d)
                    for p in d_params:  # generator step: no critic gradients, no hooks
                        p.requires_grad_(False)
                    cond, column, category = fake_conditions(batch)
                    loss_g = self._generator_loss(g_net, d_net, sampler, cond, column, category,
                                                  gen)
                    opt_g.zero_grad()
                    loss_g.backward()
                    opt_g.step()
                    sum_d += float(loss_d.detach()) / batch
                    sum_g += float(loss_g.detach())
                record = {"epoch": epoch + 1, "loss_d": sum_d / steps, "loss_g": sum_g / steps}
                record_epoch(self.history_, record, epochs, progress, log, "ctgan", "dp")
        finally:
            dp.close()
            for p in d_params:
                p.requires_grad_(True)
        self._finish_dp_training(dp, g_net, started)
        self.generator_ = g_net
        self.critic_ = d_net

    def _train(self, matrix: np.ndarray, rng: np.random.Generator, progress: Progress) -> None:
        plan = self.plan_
        gen = make_torch_generator(rng)
        data = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))
        codes = plan.codes(data)
        val = None
        if self.early_stopping:
            perm = torch.randperm(len(data), generator=gen)
            n_val = max(1, int(round(len(data) * self.validation_share)))
            val = _marginals(plan, data[perm[:n_val]], codes[perm[:n_val]])
            data, codes = data[perm[n_val:]], codes[perm[n_val:]]
        sampler = ConditionSampler(plan, codes, log_frequency=self.log_frequency)
        self.sampler_ = sampler
        self.n_options_ = sampler.n_options
        g_net, d_net = self._build(gen)
        set_dropout_generator(d_net, gen)
        g_params = [p for p in g_net.parameters() if p.requires_grad]
        opt_g = Adam(g_params, lr=self.generator_lr, betas=ADAM_BETAS, weight_decay=WEIGHT_DECAY)
        opt_d = Adam(d_net.parameters(), lr=self.discriminator_lr, betas=ADAM_BETAS,
                     weight_decay=WEIGHT_DECAY)
        n = len(data)
        batch = int(self.batch_size)
        steps = max(n // batch, 1)
        epochs = self.training_epochs(n)
        log = logger.info if self.verbose else logger.debug
        self.history_: list[dict[str, float]] = []
        best: tuple[float, Any, int] = (math.inf, None, 0)
        started = time.perf_counter()

        for epoch in range(epochs):
            g_net.train()
            d_net.train()
            sum_d = sum_g = 0.0
            for _ in range(steps):
                loss_d, loss_g = self._gan_step((g_net, d_net), (opt_g, opt_d), sampler, data, gen)
                sum_d += loss_d
                sum_g += loss_g
            record = {"epoch": epoch + 1, "loss_d": sum_d / steps, "loss_g": sum_g / steps}
            if val is not None and ((epoch + 1) % EVAL_EVERY == 0 or epoch + 1 == epochs):
                g_net.eval()
                score = _marginal_distance(val, _marginals(plan, *self._generate(
                    g_net, EVAL_ROWS, gen, None)))
                record["validation"] = score
                if score < best[0]:
                    best = (score, {k: v.clone() for k, v in g_net.state_dict().items()}, epoch + 1)
            record_epoch(self.history_, record, epochs, progress, log, "ctgan")
            if val is not None and epoch + 1 - best[2] >= int(self.patience) * EVAL_EVERY:
                log("ctgan early stop at epoch %d (best %d)", epoch + 1, best[2])
                progress("ctgan.fit", epochs, epochs)
                break
        self._finish_training(g_net, best, started)
        self.generator_ = g_net
        self.critic_ = d_net

    def _fit_stream(self, stream: Any, rng: np.random.Generator,
                    progress: Progress = no_progress) -> None:
        """Train on a table read in blocks (``synthdata.models.streaming``: ``stream`` gives
        ``n_rows``, ``blocks(epoch)`` and ``category_counts``); no early stopping, no DP.

        Training-by-sampling per block: each block gets a condition sampler over its own rows
        (:meth:`_block_sampler`), categories weighted by the log of their frequency in the
        whole table. An epoch makes ``n_rows // batch_size`` steps as in memory, spread over
        the blocks in proportion to their rows.
        """
        self.plan_ = plan = SpanPlan(self.transformer_.layout_)
        with torch_threads():
            gen = make_torch_generator(rng)
            sampler = ConditionSampler(plan, torch.zeros((1, plan.n_soft), dtype=torch.long),
                                       log_frequency=self.log_frequency)
            counts = torch.from_numpy(np.concatenate(
                [np.zeros(0)] + [stream.category_counts[sp.column] for sp in sampler.spans]
            ).astype(np.float64))
            weight = torch.log1p(counts) if self.log_frequency else counts
            if sampler.n_columns:  # the whole table's frequencies, as an in-memory fit has
                sampler.freq_probs = _span_table(sampler, counts)
                sampler.cat_probs = _span_table(sampler, weight)
            self.sampler_, self.n_options_ = sampler, sampler.n_options
            g_net, d_net = self._build(gen)
            set_dropout_generator(d_net, gen)
            opt_g = Adam(g_net.parameters(), lr=self.generator_lr, betas=ADAM_BETAS,
                         weight_decay=WEIGHT_DECAY)
            opt_d = Adam(d_net.parameters(), lr=self.discriminator_lr, betas=ADAM_BETAS,
                         weight_decay=WEIGHT_DECAY)
            n = int(stream.n_rows)
            epochs = self.training_epochs(n)
            steps = max(n // int(self.batch_size), 1)
            log = logger.info if self.verbose else logger.debug
            self.history_ = []
            started = time.perf_counter()
            for epoch in range(epochs):
                g_net.train()
                d_net.train()
                sum_d = sum_g = 0.0
                done = seen = 0
                for block in stream.blocks(epoch):
                    data = torch.from_numpy(block)
                    seen += len(data)
                    local = self._block_sampler(data, weight)
                    target = steps if seen >= n else steps * seen // n
                    while done < target:
                        loss_d, loss_g = self._gan_step((g_net, d_net), (opt_g, opt_d), local,
                                                        data, gen)
                        sum_d += loss_d
                        sum_g += loss_g
                        done += 1
                record = {"epoch": epoch + 1, "loss_d": sum_d / max(done, 1),
                          "loss_g": sum_g / max(done, 1)}
                record_epoch(self.history_, record, epochs, progress, log, "ctgan", "stream")
            self._finish_training(g_net, (math.inf, None, 0), started)
            self.generator_, self.critic_ = g_net, d_net

    def _block_sampler(self, data: torch.Tensor, weight: torch.Tensor) -> ConditionSampler:
        """Training-by-sampling over one block's rows: categories by ``weight`` (the whole
        table's log-frequency) among those the block holds, then a row of the block."""
        local = ConditionSampler(self.plan_, self.plan_.codes(data),
                                 log_frequency=self.log_frequency)
        if local.n_columns:
            local.cat_probs = _span_table(local, weight * (local.counts > 0))
        return local

    def _gan_step(self, nets: tuple[_Generator, _Critic], opts: tuple[Adam, Adam],
                  sampler: ConditionSampler, data: torch.Tensor, gen: torch.Generator
                  ) -> tuple[float, float]:
        """``discriminator_steps`` critic updates and one generator update on real rows of
        ``data`` drawn by ``sampler``; the last critic loss and the generator loss."""
        (g_net, d_net), (opt_g, opt_d) = nets, opts
        plan, batch, emb = self.plan_, int(self.batch_size), int(self.embedding_dim)
        loss_d = torch.zeros(())
        for _ in range(int(self.discriminator_steps)):
            cond, column, category, rows = _draw(sampler, batch, len(data), gen)
            option = _options(sampler, column, category)
            z = torch.randn((batch, emb), generator=gen)
            with torch.no_grad():  # the critic step needs no generator gradients
                fake = plan.activate(g_net.run(z, option), tau=GUMBEL_TAU, generator=gen)
            loss_d = self._critic_loss(d_net, data[rows], fake, cond, option, gen)
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        cond, column, category, _ = _draw(sampler, batch, len(data), gen)
        loss_g = self._generator_loss(g_net, d_net, sampler, cond, column, category, gen,
                                      fast=True)
        opt_g.zero_grad()
        # only the generator's gradients: the critic's weight gradients of this backward
        # would be computed and thrown away (a third of its matrix products)
        loss_g.backward(inputs=[p for p in g_net.parameters() if p.requires_grad])
        opt_g.step()
        return float(loss_d.detach()), float(loss_g.detach())

    # -- sample -------------------------------------------------------------------------
    @torch.inference_mode()
    def _generate(self, g_net: _Generator, n: int, gen: torch.Generator,
                  fixed: list[tuple[int, int]] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` rows as a one-hot/values matrix and their softmax codes.

        ``fixed`` lists (condition-column position, category) to set in every condition
        vector; ``None`` draws one column per row by real frequency.
        """
        plan, sampler, emb = self.plan_, self.sampler_, int(self.embedding_dim)
        if sampler.n_columns and not fixed:  # one condition per row, as option indices
            _, column, category = sampler.draw_by_frequency(n, gen)
            raw = g_net.run(torch.randn((n, emb), generator=gen),
                            _options(sampler, column, category))
        else:
            cond = torch.zeros((n, sampler.n_options))
            for position, category in fixed or []:
                cond[:, sampler.option(position, category)] = 1.0
            raw = g_net(torch.cat([torch.randn((n, emb), generator=gen), cond], dim=1))
        # Each softmax span is drawn from softmax(logits) (Gumbel-max: exact categorical
        # draws, the zero-temperature limit of the training-time Gumbel-softmax); taking the
        # arg-max instead collapses every column onto its most likely category.
        codes = plan.sample_codes(raw, gen)
        out = plan.one_hot(codes, n)
        if plan.tanh_cols.numel():
            out[:, plan.tanh_cols] = torch.tanh(raw[:, plan.tanh_cols])
        if plan.linear_cols.numel():
            out[:, plan.linear_cols] = raw[:, plan.linear_cols]
        return out, codes

    def _sample_matrix(self, n: int, rng: np.random.Generator,
                       conditions: dict[str, int] | None) -> np.ndarray:
        gen = make_torch_generator(rng)
        with torch_threads():
            if not conditions:
                parts = [self._generate(self.generator_, min(SAMPLE_CHUNK, n - i), gen, None)[0]
                         for i in range(0, n, SAMPLE_CHUNK)]
                return torch.cat(parts).numpy().astype(np.float64)
            return self._sample_conditioned(n, gen, conditions)

    def _sample_conditioned(self, n: int, gen: torch.Generator, conditions: dict[str, int]) -> np.ndarray:
        sampler = self.sampler_
        positions = {s.column: j for j, s in enumerate(sampler.spans)}
        fixed = [(positions[col], code) for col, code in conditions.items()]
        checks = [(sampler.spans[p].index, code) for p, code in fixed]
        kept: list[torch.Tensor] = []
        n_kept = drawn = 0
        for _ in range(MAX_CONDITION_ROUNDS):
            size = min(SAMPLE_CHUNK, max(1024, math.ceil(1.2 * (n - n_kept))))
            rows, codes = self._generate(self.generator_, size, gen, fixed)
            ok = torch.ones(size, dtype=torch.bool)
            for span, code in checks:
                ok &= codes[:, span] == code
            kept.append(rows[ok])
            n_kept += int(ok.sum())
            drawn += size
            if n_kept >= n:
                return torch.cat(kept)[:n].numpy().astype(np.float64)
        raise ConfigError(
            f"ctgan: the generator honours conditions {sorted(conditions)} in only {n_kept} of "
            f"{drawn} rows; it is undertrained for this combination — train longer or condition "
            "on fewer columns")

    # -- state --------------------------------------------------------------------------
    def _get_torch_state(self) -> dict[str, Any]:
        s = self.sampler_
        return {"generator": self.generator_.state_dict(),
                "sampler": {"freq_probs": s.freq_probs} if s.n_columns else {}}

    def _set_torch_state(self, state: dict[str, Any]) -> None:
        self.plan_ = SpanPlan(self.transformer_.layout_)
        dummy_codes = torch.zeros((1, self.plan_.n_soft), dtype=torch.long)
        sampler = ConditionSampler(self.plan_, dummy_codes, log_frequency=self.log_frequency)
        if sampler.n_columns:
            sampler.freq_probs = state["sampler"]["freq_probs"]
        self.sampler_ = sampler
        self.n_options_ = sampler.n_options
        if not has_wide_layers(state["generator"]):  # an archive from before wide-span layers
            self.wide_levels = None
        g_net, _ = self._build(torch.Generator().manual_seed(0))  # weights overwritten below
        g_net.load_state_dict(state["generator"])
        g_net.eval()
        self.generator_ = g_net



def _draw(sampler: ConditionSampler, batch: int, n_rows: int, gen: torch.Generator
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(cond, column, category, real_row)`` for ``batch`` rows (uniform rows when the
    table has no discrete column)."""
    if sampler.n_columns:
        return sampler.draw(batch, gen)
    zero = torch.zeros(batch, dtype=torch.long)
    return torch.zeros((batch, 0)), zero, zero, torch.randint(n_rows, (batch,), generator=gen)


def _options(sampler: ConditionSampler, column: torch.Tensor, category: torch.Tensor
             ) -> torch.Tensor | None:
    """Each row's hot condition slot (``None`` when the table has no discrete column)."""
    return sampler.offsets[column] + category if sampler.n_columns else None


def _span_table(sampler: ConditionSampler, weight: torch.Tensor) -> torch.Tensor:
    """A ``(columns, widest)`` probability table: each discrete column's slots of ``weight``
    (one entry per condition option) normalised to sum to 1."""
    table = torch.zeros((sampler.n_columns, int(sampler.widths.max())), dtype=torch.float64)
    for j, span in enumerate(sampler.spans):
        start = int(sampler.offsets[j])
        w = weight[start:start + span.width].to(torch.float64)
        table[j, :span.width] = w / w.sum() if float(w.sum()) > 0 else 1.0 / span.width
    return table.to(torch.float32)


# -- validation distance for early stopping ---------------------------------------------------

_QUANTILES = torch.linspace(0.02, 0.98, 25)


def _marginals(plan: SpanPlan, matrix: torch.Tensor, codes: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-span category frequencies ``(n_soft, max_width)`` and value quantiles."""
    freq = torch.zeros((plan.n_soft, plan.max_width))
    if plan.n_soft:
        freq.scatter_add_(1, codes.T, torch.ones(codes.T.shape))
        freq /= len(matrix)
    values = matrix[:, plan.value_cols]
    quant = torch.quantile(values, _QUANTILES, dim=0) if values.numel() else torch.zeros(0)
    return freq, quant


def _marginal_distance(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> float:
    tv = 0.5 * (a[0] - b[0]).abs().sum(dim=1)
    parts = [tv]
    if a[1].numel():
        parts.append((a[1] - b[1]).abs().mean(dim=0))
    return float(torch.cat(parts).mean())
