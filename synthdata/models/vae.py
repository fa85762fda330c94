"""VAE generator: encoder/decoder MLPs over the transformed layout (TVAE-style idea).

Numbers are normal scores by default (``numeric_encoding="quantile"``: one linear value
span each); ``"mode"`` uses mode-specific normalisation instead. The decoder outputs, per
row, a mean for every value span (through ``tanh`` for the scalar of mode-specific
normalised numbers), a scale for those values, and logits for every softmax span (mode
indicators, categories, missing indicators).

Reconstruction loss per row, summed over spans (each column counts once):

- value spans: Gaussian negative log-likelihood ``(x - tanh(m))^2 / (2 s^2) + log s``,
  where the scale ``s`` is an output of the decoder (a linear head squashed into
  ``[MIN_SCALE, MAX_SCALE]``) — a layer-based scale, not a free parameter, so that
  opacus can wrap the whole model for DP-SGD later;
- softmax spans: cross-entropy with the one-hot target.

Loss = ``loss_factor`` · reconstruction + ``kl_weight`` · KL(q(z|x) ‖ N(0, I)), averaged
over the batch; Adam with ``l2scale`` weight decay. Only ``nn.Linear`` and ReLU layers (no
BatchNorm, no dropout) — DP-SGD ready.

Sampling draws ``z ~ N(0, I)`` in large batches, decodes, adds the decoded Gaussian noise
to the values and draws every softmax span from its decoded categorical distribution
(taking the most probable slot instead, as TVAE does, collapses rare categories whenever the
latent code carries little information about a column).

Conditional sampling (``conditions={"col": value}``) is rejection sampling: candidates are
drawn in vectorised batches sized from the running acceptance rate, and rows whose
discrete columns match every condition are kept. At most ``MAX_REJECTION_ROUNDS`` rounds of
at most ``MAX_REJECTION_BATCH`` candidates are drawn; if that cannot reach ``n`` rows (the
condition is too rare under the model), a ``ConfigError`` says so with the observed rate.
The GAN (``"ctgan"``) conditions through its input instead and has no such limit.

Early stopping (``early_stopping=True``, non-DP only) holds out ``validation_share`` of the
training rows, tracks the validation loss every epoch, stops after ``patience`` epochs
without improvement and restores the best weights. Off by default so that epoch counts
compare with peers.

Differential privacy (``privacy=DPConfig(...)``): DP-SGD on the whole model (every layer
is ``nn.Linear``, so opacus's ``GradSampleModule`` computes vectorised per-sample
gradients). Each step draws a Poisson sample of the rows (rate ``q = batch_size / n``;
``ceil(n / batch_size)`` steps per epoch, as without DP), clips every row's gradient to
``max_grad_norm`` (L2 over all parameters), sums, adds Gaussian noise
``N(0, (σ·max_grad_norm)²)`` and divides by the expected batch size (:class:`DPSGD`). The
Poisson sample, the noise and every other draw of the training loop come from a
``torch.Generator`` seeded with fresh OS entropy (``privacy.noise.secure_torch_generator``),
never from ``seed``: a DP fit is not bit-reproducible (the seed still fixes the weight
initialisation, which reads no data, and sampling from the fitted model). σ is calibrated
up front so that the planned ``epochs × steps_per_epoch`` steps spend the plan's training ε
at the ledger's DP-SGD δ; the ledger is charged once before training (a plan that does not
fit raises ``PrivacyBudgetError`` before any step) and cross-checked against an opacus accountant fed
every step at the end; training stops hard at the planned steps. No early stopping under
DP (it would read held-out real rows).
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
from synthdata.errors import ConditionTooRareError, ConfigError
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
    SpanPlan,
    TrainingRecord,
    build_module,
    check_wide,
    has_wide_layers,
    mlp,
    record_epoch,
    torch_threads,
    wide_blocks,
    wide_embed,
    wide_head,
)
from synthdata.models.base import BaseGenerator, Progress, no_progress
from synthdata.privacy.dpsgd import DPSGD
from synthdata.schema.model import Schema

logger = logging.getLogger(__name__)

MIN_SCALE, MAX_SCALE = 0.01, 1.0
MAX_REJECTION_ROUNDS = 20
MAX_REJECTION_BATCH = 1_000_000


class _VAENet(nn.Module):
    def __init__(self, n_features: int, n_values: int, embedding_dim: int,
                 compress_dims: Sequence[int], decompress_dims: Sequence[int],
                 wide: Sequence[tuple[int, int]] = (), wide_dim: int = WIDE_DIM) -> None:
        super().__init__()
        # wide softmax spans: embedded on the way in, low-rank logits on the way out
        self.embed = wide_embed(n_features, wide, wide_dim)
        self.encoder = mlp([self.embed.n_out, *compress_dims])
        self.latent = nn.Linear(compress_dims[-1], 2 * embedding_dim)  # mean and log-variance
        self.decoder = mlp([embedding_dim, *decompress_dims])
        self.out = wide_head(decompress_dims[-1], n_features, wide, wide_dim)
        self.scale = nn.Linear(decompress_dims[-1], max(n_values, 1))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.latent(self.encoder(self.embed(x))).chunk(2, dim=1)
        return mu, logvar.clamp(-20.0, 10.0)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.decoder(z)
        log_lo, log_hi = math.log(MIN_SCALE), math.log(MAX_SCALE)
        log_scale = log_lo + (log_hi - log_lo) * torch.sigmoid(self.scale(h))
        return self.out(h), log_scale


class VAEGenerator(TrainingRecord, BaseGenerator):
    """Variational autoencoder over the transformed table.

    Parameters
    ----------
    schema:
        The table's schema.
    epochs, batch_size, lr:
        Passes over the training rows, rows per step, Adam learning rate. ``epochs="auto"``
        (the default): 300 epochs while they take at most ``epoch_budget.max_steps``
        optimizer steps (tables up to 40,000 rows at ``batch_size=1000``), then as many
        epochs as fit in that many steps (see :class:`~synthdata.models._params.EpochBudget`;
        under DP the steps come from the noisy count). An integer is used as given.
    embedding_dim, compress_dims, decompress_dims:
        Latent size and hidden layer widths of the encoder and decoder.
    numeric_encoding:
        ``"quantile"`` (default): each number is one normal score (a Gaussian value span);
        ``"mode"``: mode-specific normalisation (a scalar within the mode plus a mode
        indicator span). See ``benchmarks/README.md`` for why quantile is the default.
    loss_factor, kl_weight:
        Weights of the reconstruction and KL terms.
    l2scale:
        Adam weight decay.
    wide_levels, wide_dim:
        Softmax spans (categorical columns) with more than ``wide_levels`` slots are
        embedded in ``wide_dim`` units on the encoder's input and get low-rank logits
        (``wide_dim`` units, then the levels) on the decoder's output (``None``, the
        default: plain one-hot layers; on covid_wide, 5 columns of 58-102 levels, the
        embedded VAE fitted no faster, benchmarks/results/wide_embed.md).
    early_stopping, validation_share, patience:
        Stop on a held-out validation loss (see the module docstring); off by default.
    verbose:
        Log the losses of every epoch at INFO level (DEBUG otherwise).
    privacy:
        A ``DPConfig`` for DP-SGD on the whole model (see the module docstring); ``None``
        for a non-private fit.
    seed:
        Seed of every random draw of fit and sampling (local generators only).
    """

    name: ClassVar[str] = "vae"
    dp_training: ClassVar[str | None] = "dpsgd"
    # epochs="auto": 300 epochs up to 12,000 steps (40 steps per epoch: 40,000 rows at the
    # default batch); measured at 200k x 50 (benchmarks/results/scale.md)
    epoch_budget: ClassVar[EpochBudget] = EpochBudget(full_epochs=300, max_steps=12_000)

    def __init__(self, schema: Schema, *, epochs: int | str = AUTO, batch_size: int = 1000, lr: float = 2e-3,
                 embedding_dim: int = 32, compress_dims: Sequence[int] = (64,),
                 decompress_dims: Sequence[int] = (64, 64), numeric_encoding: str = "quantile",
                 loss_factor: float = 2.0,
                 kl_weight: float = 1.0, l2scale: float = 1e-5, early_stopping: bool = False,
                 validation_share: float = 0.1, patience: int = 30, verbose: bool = False,
                 wide_levels: int | None = None, wide_dim: int = WIDE_DIM,
                 privacy: Any = None, seed: int | None = 0) -> None:
        self.schema, self.epochs, self.batch_size, self.lr = schema, epochs, batch_size, lr
        self.embedding_dim, self.compress_dims = embedding_dim, compress_dims
        self.decompress_dims, self.loss_factor, self.kl_weight = decompress_dims, loss_factor, kl_weight
        self.numeric_encoding = numeric_encoding
        self.l2scale, self.early_stopping = l2scale, early_stopping
        self.validation_share, self.patience, self.verbose = validation_share, patience, verbose
        self.wide_levels, self.wide_dim = wide_levels, wide_dim
        self.privacy, self.seed = privacy, seed

    # -- params -------------------------------------------------------------------------
    def _validate_params(self) -> None:
        super()._validate_params()
        check_epochs(self)
        check_ints(self, batch_size=self.batch_size, embedding_dim=self.embedding_dim,
                   patience=self.patience)
        self._positive(lr=self.lr, loss_factor=self.loss_factor)
        check_dims(self, compress_dims=self.compress_dims, decompress_dims=self.decompress_dims)
        check_encoding(self)
        check_nonnegative(self, kl_weight=self.kl_weight, l2scale=self.l2scale)
        if not isinstance(self.validation_share, (int, float)) or not 0 < self.validation_share < 0.5:
            raise ConfigError(f"{self.name}: parameter validation_share must be in (0, 0.5), got "
                              f"{self.validation_share!r}")
        for flag in ("early_stopping", "verbose"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{self.name}: parameter {flag} must be true or false, got "
                                  f"{getattr(self, flag)!r}")
        check_no_dp_early_stopping(self)
        check_wide(self)

    def training_epochs(self, n_rows: int) -> int:
        """Epochs a fit on ``n_rows`` training rows runs (resolves ``epochs="auto"``; under
        DP ``n_rows`` is the noisy count)."""
        steps = math.ceil(n_rows / min(int(self.batch_size), max(int(n_rows), 1)))
        return resolve_epochs(self, self.epoch_budget, steps)

    # -- model ----------------------------------------------------------------------------
    def _build(self, generator: torch.Generator) -> _VAENet:
        plan = self.plan_
        n_values = int(plan.value_cols.numel())
        wide = wide_blocks(plan.soft_blocks(), self.wide_levels)
        net = build_module(lambda: _VAENet(plan.n_features, n_values, int(self.embedding_dim),
                                           tuple(self.compress_dims), tuple(self.decompress_dims),
                                           wide, int(self.wide_dim)),
                           generator)
        assert isinstance(net, _VAENet)
        if n_values == 0:  # an all-discrete table: the scale head is unused (and untrained)
            net.scale.requires_grad_(False)
        return net

    def _losses(self, net: _VAENet, x: torch.Tensor, codes: torch.Tensor,
                eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean reconstruction NLL and mean KL over the batch."""
        recon, kl = self._row_losses(net, x, codes, eps)
        return recon.mean(), kl.mean()

    def _row_losses(self, net: _VAENet, x: torch.Tensor, codes: torch.Tensor,
                    eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row reconstruction NLL and KL, ``(batch,)`` each."""
        plan = self.plan_
        mu, logvar = net.encode(x)
        z = mu + eps * torch.exp(0.5 * logvar)
        raw, log_scale = net.decode(z)
        recon = plan.cross_entropy(raw, codes)
        if plan.value_cols.numel():
            mean = raw[:, plan.value_cols]
            mean = torch.where(plan.is_tanh_value, torch.tanh(mean), mean)
            err = x[:, plan.value_cols] - mean
            recon = recon + (0.5 * err.square() * torch.exp(-2 * log_scale) + log_scale).sum(dim=1)
        kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(dim=1)
        return recon, kl

    # -- fit ----------------------------------------------------------------------------
    def _fit(self, matrix: np.ndarray, rng: np.random.Generator, progress: Progress = no_progress) -> None:
        self.plan_ = SpanPlan(self.transformer_.layout_)
        with torch_threads():
            if self.privacy is not None:
                self._train_dp(matrix, rng, progress)
            else:
                self._train(matrix, rng, progress)

    def _train_dp(self, matrix: np.ndarray, rng: np.random.Generator, progress: Progress) -> None:
        """DP-SGD on the whole model (see the module docstring)."""
        net = self._build(make_torch_generator(rng))  # seeded init: reads no data
        data = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))
        codes = self.plan_.codes(data)
        n = len(data)
        n_plan = self._planning_rows(n)  # the noisy count: q and steps never read the true n
        batch = min(int(self.batch_size), n_plan)
        steps = math.ceil(n_plan / batch)
        epochs = self.training_epochs(n_plan)
        dp = DPSGD(self, net, step="model.vae.dp_sgd", expected_batch_size=batch, n_rows=n,
                   steps=epochs * steps, epsilon=self.dp_plan_.training_epsilon,
                   planned_rows=n_plan)
        # every draw inside the loop (here the reparameterisation noise) uses the DP-SGD
        # run's secure generator: a seeded stream would be advanced by the (private)
        # Poisson batch sizes, tying later steps to the data outside the accounting
        gen = dp.generator
        opt = Adam(net.parameters(), lr=self.lr, weight_decay=self.l2scale)
        emb = int(self.embedding_dim)
        self.history_ = []
        log = logger.info if self.verbose else logger.debug
        started = time.perf_counter()
        net.train()
        try:
            for epoch in range(epochs):
                total_recon = total_kl = 0.0
                for _ in range(steps):
                    idx = dp.poisson_sample()
                    if len(idx):
                        eps = torch.randn((len(idx), emb), generator=gen)
                        recon, kl = self._row_losses(net, data[idx], codes[idx], eps)
                        loss = (self.loss_factor * recon + self.kl_weight * kl).sum()
                        loss.backward()
                        total_recon += float(recon.detach().sum()) / batch
                        total_kl += float(kl.detach().sum()) / batch
                    dp.step(opt)
                record = {"epoch": epoch + 1, "recon": total_recon / steps, "kl": total_kl / steps}
                record_epoch(self.history_, record, epochs, progress, log, "vae", "dp")
        finally:
            dp.close()
        self._finish_dp_training(dp, net, started)
        self.net_ = net

    def _train(self, matrix: np.ndarray, rng: np.random.Generator, progress: Progress) -> None:
        gen = make_torch_generator(rng)
        net = self._build(gen)
        data = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))
        codes = self.plan_.codes(data)
        val_x = val_codes = val_eps = None
        if self.early_stopping:
            perm = torch.randperm(len(data), generator=gen)
            n_val = max(1, int(round(len(data) * self.validation_share)))
            val_idx, fit_idx = perm[:n_val], perm[n_val:]
            val_x, val_codes = data[val_idx], codes[val_idx]
            val_eps = torch.randn((n_val, int(self.embedding_dim)), generator=gen)
            data, codes = data[fit_idx], codes[fit_idx]
        n = len(data)
        batch = min(int(self.batch_size), n)
        steps = math.ceil(n / batch)
        opt = Adam(net.parameters(), lr=self.lr, weight_decay=self.l2scale)
        eps_buf = torch.empty((batch, int(self.embedding_dim)))
        epochs = self.training_epochs(n)
        best = (math.inf, None, 0)
        self.history_: list[dict[str, float]] = []
        log = logger.info if self.verbose else logger.debug
        started = time.perf_counter()
        net.train()
        for epoch in range(epochs):
            # one gather per epoch; batches are then contiguous views
            perm = torch.randperm(n, generator=gen)
            data_ep, codes_ep = data[perm], codes[perm]
            total_recon = total_kl = 0.0
            for i in range(steps):
                xb, cb = data_ep[i * batch:(i + 1) * batch], codes_ep[i * batch:(i + 1) * batch]
                eps = eps_buf[:len(xb)].normal_(generator=gen)
                recon, kl = self._train_step(net, opt, xb, cb, eps)
                total_recon += recon
                total_kl += kl
            record = {"epoch": epoch + 1, "recon": total_recon / steps, "kl": total_kl / steps}
            if val_x is not None:
                with torch.no_grad():
                    vr, vk = self._losses(net, val_x, val_codes, val_eps)
                    val = float(self.loss_factor * vr + self.kl_weight * vk)
                record["validation"] = val
                if val < best[0]:
                    best = (val, {k: v.clone() for k, v in net.state_dict().items()}, epoch + 1)
            record_epoch(self.history_, record, epochs, progress, log, "vae")
            if val_x is not None and epoch + 1 - best[2] >= int(self.patience):
                log("vae early stop at epoch %d (best %d)", epoch + 1, best[2])
                progress("vae.fit", epochs, epochs)
                break
        self._finish_training(net, best, started)
        self.net_ = net

    def _fit_stream(self, stream: Any, rng: np.random.Generator,
                    progress: Progress = no_progress) -> None:
        """Train on a table read in mini-batches (``synthdata.models.streaming``: ``stream``
        gives ``n_rows`` and ``minibatches(epoch, batch)``); no early stopping, no DP."""
        self.plan_ = SpanPlan(self.transformer_.layout_)
        with torch_threads():
            gen = make_torch_generator(rng)
            net = self._build(gen)
            n = int(stream.n_rows)
            batch = min(int(self.batch_size), n)
            opt = Adam(net.parameters(), lr=self.lr, weight_decay=self.l2scale)
            eps_buf = torch.empty((batch, int(self.embedding_dim)))
            epochs = self.training_epochs(n)
            self.history_ = []
            log = logger.info if self.verbose else logger.debug
            started = time.perf_counter()
            net.train()
            for epoch in range(epochs):
                total_recon = total_kl = 0.0
                steps = 0
                for rows in stream.minibatches(epoch, batch):
                    xb = torch.from_numpy(rows)
                    eps = eps_buf[:len(xb)].normal_(generator=gen)
                    recon, kl = self._train_step(net, opt, xb, self.plan_.codes(xb), eps)
                    total_recon += recon
                    total_kl += kl
                    steps += 1
                record = {"epoch": epoch + 1, "recon": total_recon / max(steps, 1),
                          "kl": total_kl / max(steps, 1)}
                record_epoch(self.history_, record, epochs, progress, log, "vae", "stream")
            self._finish_training(net, (math.inf, None, 0), started)
            self.net_ = net

    def _train_step(self, net: _VAENet, opt: Adam, xb: torch.Tensor, cb: torch.Tensor,
                    eps: torch.Tensor) -> tuple[float, float]:
        """One Adam step on a mini-batch; its mean reconstruction NLL and KL."""
        recon, kl = self._losses(net, xb, cb, eps)
        loss = self.loss_factor * recon + self.kl_weight * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(recon.detach()), float(kl.detach())

    # -- sample -------------------------------------------------------------------------
    @torch.inference_mode()
    def _decode_batch(self, n: int, gen: torch.Generator) -> torch.Tensor:
        plan = self.plan_
        z = torch.randn((n, int(self.embedding_dim)), generator=gen)
        raw, log_scale = self.net_.decode(z)
        out = torch.zeros((n, plan.n_features))
        if plan.n_soft:
            hot = plan.sample_codes(raw, gen)  # a draw from p(x|z), not its mode
            out.scatter_(1, plan.starts.unsqueeze(0) + hot, 1.0)
        if plan.value_cols.numel():
            mean = raw[:, plan.value_cols]
            mean = torch.where(plan.is_tanh_value, torch.tanh(mean), mean)
            noise = torch.randn(mean.shape, generator=gen)
            out[:, plan.value_cols] = mean + noise * log_scale.exp()
        return out

    def _sample_matrix(self, n: int, rng: np.random.Generator,
                       conditions: dict[str, int] | None) -> np.ndarray:
        gen = make_torch_generator(rng)
        with torch_threads():
            if not conditions:
                parts = [self._decode_batch(min(SAMPLE_CHUNK, n - i), gen)
                         for i in range(0, n, SAMPLE_CHUNK)]
                return torch.cat(parts).numpy().astype(np.float64)
            return self._rejection_sample(n, gen, conditions)

    def _rejection_sample(self, n: int, gen: torch.Generator,
                          conditions: dict[str, int]) -> np.ndarray:
        plan = self.plan_
        checks = [(plan.starts[plan.soft_index(col)].item(), plan.soft[plan.soft_index(col)].width, code)
                  for col, code in conditions.items()]
        kept: list[torch.Tensor] = []
        n_kept = drawn = accepted = 0
        for round_ in range(MAX_REJECTION_ROUNDS):
            rate = (accepted + 1) / (drawn + 1)  # optimistic before the first round
            want = math.ceil(1.2 * (n - n_kept) / rate) + 64
            size = min(MAX_REJECTION_BATCH, max(4096, want))
            for i in range(0, size, SAMPLE_CHUNK):
                rows = self._decode_batch(min(SAMPLE_CHUNK, size - i), gen)
                ok = torch.ones(len(rows), dtype=torch.bool)
                for start, width, code in checks:
                    ok &= rows[:, start:start + width].argmax(dim=1) == code
                kept.append(rows[ok])
                n_kept += int(ok.sum())
                accepted += int(ok.sum())
            drawn += size
            if n_kept >= n:
                return torch.cat(kept)[:n].numpy().astype(np.float64)
            # give up early when even the optimistic rate cannot reach n in the rounds left
            left = (MAX_REJECTION_ROUNDS - round_ - 1) * MAX_REJECTION_BATCH
            if (n - n_kept) * (drawn + 1) / (accepted + 1) > left:
                break
        shown = ", ".join(f"{c}={self.transformer_.encoder(c).categories_[k]!r}"
                          if k < len(self.transformer_.encoder(c).categories_) else f"{c}=<missing>"
                          for c, k in conditions.items())
        raise ConditionTooRareError(
            f"vae: conditions {shown} are too rare under the fitted model to sample {n} rows by "
            f"rejection: {accepted} of {drawn} candidates matched (acceptance rate "
            f"{accepted / max(drawn, 1):.2e}; at most {MAX_REJECTION_ROUNDS} rounds of "
            f"{MAX_REJECTION_BATCH:,} candidates would not be enough); ask for fewer rows, "
            "relax the conditions, or use the 'ctgan' generator, which conditions directly")

    # -- state --------------------------------------------------------------------------
    def _get_torch_state(self) -> dict[str, Any]:
        return {"net": self.net_.state_dict()}

    def _set_torch_state(self, state: dict[str, Any]) -> None:
        self.plan_ = SpanPlan(self.transformer_.layout_)
        if not has_wide_layers(state["net"]):  # an archive from before wide-span layers
            self.wide_levels = None
        gen = torch.Generator().manual_seed(0)  # weights are overwritten just below
        net = self._build(gen)
        net.load_state_dict(state["net"])
        net.eval()
        self.net_ = net
