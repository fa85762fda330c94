"""Shared torch helpers for the neural generators (VAE, CTGAN).

- :func:`torch_threads`: a context manager that picks a thread count suited to small
  CPUs for the duration of a fit or sample and restores the previous one afterwards.
- :class:`SpanPlan`: the transformer layout turned into index tensors once, so that
  activations, Gumbel-softmax, per-span cross-entropy and category sampling run as a
  constant number of tensor ops per batch whatever the number of columns (no Python loop
  over spans in the hot path).
- :class:`ConditionSampler`: training-by-sampling tables for the GAN's condition vector
  (column uniformly, category by log-frequency, then a real row holding it), all vectorised.
- Module construction without the global RNG (:func:`build_module`) and seeded dropout.

Every random draw here takes an explicit ``torch.Generator``; nothing touches the global
torch RNG (``torch.manual_seed``) and module construction restores it if a library
constructor draws from it.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from synthdata._progress import Progress
from synthdata.errors import ConfigError
from synthdata.transform.columns import Activation, Span, SpanRole

# Rows per forward pass when sampling: large enough to amortise per-op overhead, small enough
# that a chunk's activations stay in cache (measured on telco, 100k rows, median of 5:
# 4096 rows gave 200k/300k rows/s for ctgan/vae, 65,536 rows 142k/224k).
SAMPLE_CHUNK = 4096
# At batch sizes of a few hundred to a few thousand rows and layers of a few hundred
# units, more than two intra-op threads only adds synchronisation cost.
MAX_THREADS = 2


def default_threads() -> int:
    """Intra-op threads for a fit or sample: the generator's ``threads`` when given, else the
    cores this process may use (affinity, cgroup quota, ``OMP_NUM_THREADS``), 1 to
    ``MAX_THREADS``.

    Deterministic on purpose: the count must not follow the machine's load, because some
    kernels (the DP critic's per-sample gradient norms among them) sum in a different order
    with 1 and 2 threads, and the same data + config + seed must give the same output.
    (On a machine whose other core is busy, fork-join threading is slower; pass
    ``n_threads`` to ``torch_threads`` to choose otherwise.)
    """
    from synthdata._threads import default_threads as process_threads
    from synthdata._threads import requested_threads

    requested = requested_threads()  # the generator's threads= (see synthdata._threads)
    if requested is not None:
        return requested
    return max(1, min(MAX_THREADS, process_threads()))


@contextlib.contextmanager
def torch_threads(n_threads: int | None = None) -> Iterator[None]:
    """Run the block with ``n_threads`` intra-op threads, then restore the previous count.

    ``torch.set_num_threads`` is process-global; restoring it keeps a fit from changing
    the thread count seen by other code in the same process (not thread-safe if two fits
    run concurrently in one process — they would share the setting).
    """
    previous = torch.get_num_threads()
    wanted = n_threads or default_threads()
    if wanted != previous:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


# -- modules ------------------------------------------------------------------------------

def build_module(factory: Callable[[], nn.Module], generator: torch.Generator) -> nn.Module:
    """Construct a module and initialise it from ``generator`` only.

    Layer constructors draw their default initialisation from the global torch RNG; its
    state is saved before and restored after construction, so building a model leaves
    the global stream untouched. Every ``nn.Linear`` and recurrent layer is then
    re-initialised (PyTorch's default schemes: Kaiming-uniform weights and uniform bias;
    uniform in +-1/sqrt(hidden) for a GRU/LSTM) from ``generator``; a module with a
    ``seeded_init(generator)`` method initialises itself. (Building on the meta device
    would avoid the throw-away draws but costs ~0.5 s of lazy imports on first use.)
    """
    state = torch.get_rng_state()
    try:
        module = factory()
    finally:
        torch.set_rng_state(state)
    with torch.no_grad():
        for sub in module.modules():
            seeded_init = getattr(sub, "seeded_init", None)
            if callable(seeded_init):  # a layer with its own scheme, e.g. ctgan's split layer
                seeded_init(generator)
            elif isinstance(sub, nn.Linear):
                nn.init.kaiming_uniform_(sub.weight, a=math.sqrt(5), generator=generator)
                if sub.bias is not None:
                    bound = 1 / math.sqrt(sub.in_features) if sub.in_features else 0.0
                    nn.init.uniform_(sub.bias, -bound, bound, generator=generator)
            elif isinstance(sub, nn.RNNBase):   # e.g. the GRU of "ar" (torch's default scheme)
                # left to the global RNG, whose seed differs per process, the same seed gave
                # a different fit in every process (nafld labs: detection 0.77-0.85)
                bound = 1 / math.sqrt(sub.hidden_size)
                for weight in sub.parameters():
                    nn.init.uniform_(weight, -bound, bound, generator=generator)
    return module


class Adam:
    """Adam (Kingma & Ba, 2015) with L2 weight decay, as multi-tensor ``torch._foreach`` ops.

    Numerically the textbook update (``weight_decay`` added to the gradient, as
    ``torch.optim.Adam``). Used instead of ``torch.optim.Adam`` because the first
    ``torch.optim`` optimizer in a process imports ``torch._dynamo`` (2-3 s on a small CPU,
    a quarter of a whole VAE fit). DP-SGD (opacus) needs a ``torch.optim`` optimizer and
    will use ``torch.optim.Adam`` instead.

    The update runs as torch's fused CPU Adam kernel (``torch._fused_adam_``, the kernel behind
    ``torch.optim.Adam(fused=True)``: one pass over each parameter instead of eight
    ``_foreach`` passes; 2.1 ms instead of 13.4 ms for the 1.2M-parameter first critic layer
    of ctgan on covid_wide, one thread; same result to 1e-7). Without that kernel (an older
    torch) the ``_foreach`` ops run.
    """

    def __init__(self, params: Iterator[nn.Parameter] | Sequence[nn.Parameter], *, lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.n_steps = 0
        # the fused kernel reads the step count from one float tensor per parameter
        self._fused = getattr(torch, "_fused_adam_", None)
        self._steps = [torch.zeros((), dtype=torch.float32) for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        params = [p for p in self.params if p.grad is not None]
        if len(params) != len(self.params):
            raise RuntimeError("Adam: every parameter needs a gradient")
        grads = [p.grad for p in params]
        beta1, beta2 = self.betas
        self.n_steps += 1
        if self._fused is not None and all(p.dtype == torch.float32 for p in params):
            torch._foreach_add_(self._steps, 1.0)
            self._fused(params, grads, self.exp_avg, self.exp_avg_sq, [], self._steps,
                        lr=self.lr, beta1=beta1, beta2=beta2, weight_decay=self.weight_decay,
                        eps=self.eps, amsgrad=False, maximize=False)
            return
        if self.weight_decay:
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        torch._foreach_lerp_(self.exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(self.exp_avg_sq, beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, 1 - beta2)
        bias1 = 1 - beta1 ** self.n_steps
        bias2 = 1 - beta2 ** self.n_steps
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, math.sqrt(bias2))
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, self.exp_avg, denom, -self.lr / bias1)


class SeededDropout(nn.Module):
    """Dropout whose mask comes from an explicit generator (``nn.Dropout`` uses the global one).

    Set ``generator`` before training; in eval mode it is the identity.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0:
            return x
        keep = torch.rand(x.shape, generator=self.generator, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)


def set_dropout_generator(module: nn.Module, generator: torch.Generator) -> None:
    for sub in module.modules():
        if isinstance(sub, SeededDropout):
            sub.generator = generator


def mlp(sizes: Sequence[int], *, activation: Callable[[], nn.Module] = nn.ReLU,
        dropout: float = 0.0, last_activation: bool = True) -> nn.Sequential:
    """Linear layers with ``activation`` (and seeded dropout) between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or last_activation:
            layers.append(activation())
            if dropout > 0:
                layers.append(SeededDropout(dropout))
    return nn.Sequential(*layers)


# -- wide softmax spans: embeddings in, low-rank logits out (issue 24) ---------------------

# The suggested ``wide_levels`` (softmax spans with more slots get a learned embedding on a
# network's input and a low-rank head on its output, ``WIDE_DIM`` units each). The
# generators default to ``wide_levels=None`` (off): on covid_wide (58-102 levels) the layers
# cut parameters but not fit time (benchmarks/results/wide_embed.md).
WIDE_LEVELS = 50
WIDE_DIM = 16


def wide_blocks(spans: Sequence[tuple[int, int]], levels: int | None,
                offset: int = 0) -> list[tuple[int, int]]:
    """``(start + offset, width)`` of the spans wider than ``levels`` (none when ``levels``
    is None): the column blocks a :func:`wide_embed` / :func:`wide_head` treats as wide."""
    if levels is None:
        return []
    return [(int(start) + offset, int(width)) for start, width in spans if width > levels]


def _block_columns(n: int, blocks: Sequence[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """(columns outside every block in order, the blocks' columns in block order)."""
    inside = [c for start, width in blocks for c in range(start, start + width)]
    if len(set(inside)) != len(inside) or any(c < 0 or c >= n for c in inside):
        raise ValueError(f"wide blocks {list(blocks)} overlap or leave 0..{n - 1}")
    taken = set(inside)
    return [c for c in range(n) if c not in taken], inside


class WideEmbed(nn.Module):
    """The input side of wide softmax spans: each wide block of the input (a one-hot,
    Gumbel-softmax probabilities, or zeros while masked) times its own ``(width, dim)``
    table -- an embedding lookup for one-hot rows, a weighted mix of embeddings for soft
    ones. Output: the other input columns in their order, then ``dim`` columns per block.

    The first layer after it costs ``(other columns + blocks x dim) x units`` per row
    instead of ``columns x units``. Tables are ``nn.Linear`` without bias, so opacus's
    per-sample gradients cover them (DP-SGD needs no special case).
    """

    def __init__(self, n_in: int, blocks: Sequence[tuple[int, int]], dim: int) -> None:
        super().__init__()
        keep, inside = _block_columns(n_in, blocks)
        self.blocks = [(int(s), int(w)) for s, w in blocks]
        # one column gather puts [other columns | block 1 | block 2 ...] side by side; its
        # backward is one index_add (slicing each block instead cost a full-size gradient
        # buffer per block in the backward pass)
        self.register_buffer("order", torch.tensor(keep + inside, dtype=torch.long),
                             persistent=False)
        self.sizes = [len(keep)] + [w for _, w in self.blocks]
        self.tables = nn.ModuleList(nn.Linear(w, dim, bias=False) for _, w in self.blocks)
        self.n_out: int = len(keep) + dim * len(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.blocks:
            return x
        first, *rest = torch.index_select(x, 1, self.order).split(self.sizes, dim=1)
        return torch.cat([first, *(t(b) for t, b in zip(self.tables, rest, strict=True))], dim=1)


def wide_embed(n_in: int, blocks: Sequence[tuple[int, int]], dim: int) -> WideEmbed:
    """:class:`WideEmbed` over ``blocks``; without blocks it passes its input through and has
    no parameters (archives of tables without wide columns keep their keys)."""
    return WideEmbed(n_in, blocks, dim)


class WideHead(nn.Module):
    """An output layer ``Linear(n_in, n_out)`` with low-rank logits for wide blocks: one
    ``Linear`` gives the other outputs and ``dim`` units per block, each block's logits come
    from those units through its own ``(dim, width)`` layer. Columns return in output order.
    Per row ``n_in x (other + blocks x dim) + dim x (block widths)`` multiply-adds instead
    of ``n_in x n_out``."""

    def __init__(self, n_in: int, n_out: int, blocks: Sequence[tuple[int, int]],
                 dim: int) -> None:
        super().__init__()
        keep, inside = _block_columns(n_out, blocks)
        self.sizes = [len(keep)] + [int(dim)] * len(blocks)
        self.base = nn.Linear(n_in, len(keep) + dim * len(blocks))
        self.heads = nn.ModuleList(nn.Linear(dim, int(w)) for _, w in blocks)
        order = torch.tensor(keep + inside, dtype=torch.long)
        self.register_buffer("inverse", torch.argsort(order), persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        first, *rest = self.base(h).split(self.sizes, dim=1)
        out = torch.cat([first, *(head(u) for head, u in zip(self.heads, rest, strict=True))],
                        dim=1)
        return torch.index_select(out, 1, self.inverse)


def wide_head(n_in: int, n_out: int, blocks: Sequence[tuple[int, int]], dim: int) -> nn.Module:
    """:class:`WideHead` over ``blocks``; a plain ``nn.Linear(n_in, n_out)`` when none."""
    return WideHead(n_in, n_out, blocks, dim) if blocks else nn.Linear(n_in, n_out)


def check_wide(gen: Any) -> None:
    """ConfigError unless ``wide_levels`` is None or an integer >= 2 and ``wide_dim`` a
    positive integer."""
    levels, dim = gen.wide_levels, gen.wide_dim
    if levels is not None and (isinstance(levels, bool) or not isinstance(levels, (int, np.integer))
                               or levels < 2):
        raise ConfigError(f"{gen.name}: parameter wide_levels must be an integer >= 2 (columns "
                          f"with more levels get an embedding) or null (none), got {levels!r}")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise ConfigError(f"{gen.name}: parameter wide_dim must be a positive integer, got "
                          f"{dim!r}")


def has_wide_layers(state: dict[str, Any]) -> bool:
    """Whether a saved network state holds wide-span layers (archives written before issue
    24 do not: a loader then rebuilds without them)."""
    return any(".tables." in k or ".heads." in k or k.startswith(("tables.", "heads."))
               for k in state)


# -- layout as index tensors ----------------------------------------------------------------

@dataclass(frozen=True)
class _SoftSpan:
    index: int          # position among softmax spans
    start: int          # first column in the matrix
    width: int
    role: SpanRole
    column: str


# A width group costs a few extra tensor ops per batch; measured on a 500-row batch that is
# worth about this many padded slots per row (telco's widths 2-4 then stay one group).
GROUP_COST_SLOTS = 32


def width_groups(widths: Sequence[int], cost: int | None = None) -> list[list[int]]:
    """Partition span positions into groups that are padded to their own widest span.

    Spans sorted by width are cut into contiguous runs minimising
    ``sum(run width x run length) + cost x runs`` (exact, by dynamic programming over the
    sorted widths), so the padded slots stay close to the real number of levels: one wide
    column no longer pads every narrow one to its width. (A huge ``cost`` gives one group,
    the single padded block of earlier versions; benchmarks/bench_wide_layout.py uses that.)
    """
    cost = GROUP_COST_SLOTS if cost is None else cost
    order = sorted(range(len(widths)), key=lambda i: (widths[i], i))
    w = [widths[i] for i in order]
    best = [0.0] + [math.inf] * len(w)
    cut = [0] * (len(w) + 1)
    for j in range(1, len(w) + 1):
        for i in range(j):
            c = best[i] + w[j - 1] * (j - i) + cost
            if c < best[j]:
                best[j], cut[j] = c, i
    groups: list[list[int]] = []
    j = len(w)
    while j > 0:
        groups.append(order[cut[j]:j])
        j = cut[j]
    return groups[::-1]


@dataclass(frozen=True)
class _WidthGroup:
    spans: torch.Tensor     # positions among softmax spans, (k,)
    width: int              # the group's widest span
    gather: torch.Tensor    # (width * k,) slot-major index into [logits, pad column]


class SpanPlan:
    """The transformer layout as index tensors for vectorised per-span operations.

    Softmax spans are split into *width groups* (:func:`width_groups`); each group is
    gathered into a padded *slot-major* ``(batch, group_width, spans_in_group)`` tensor
    (padding holds ``-inf`` logits), so one ``softmax``/``logsumexp`` call over ``dim=1``
    covers a group, and the padded size follows the real number of levels instead of
    ``spans x widest span`` (on a table with one 111-level column among thirteen narrower
    ones that was 3x the real slots; a handful of groups per batch instead).
    Slot-major because torch's CPU softmax over a short last dimension is slow: on telco's
    ``(500, 18 spans, 4 slots)`` it took 760 µs along the slots as the last dimension and
    80 µs along ``dim=1`` of the transposed tensor.
    Value spans (TANH/LINEAR) are plain column index vectors.

    The training-time operations (``span_logsumexp`` and so the cross-entropies, and
    ``activate``) do not pad at all: they are *segmented* over the real slots -- each
    slot knows its span (``slot_span``), a span's maximum is one ``scatter_reduce``, its
    sum of exponentials one ``index_add`` -- so their cost is the real number of levels,
    with no ``-inf`` padding, no per-group gathers and no softmax along a middle dimension
    (on covid_wide's 14 spans of 2-102 levels, batch 1000, one thread: cross-entropy
    forward + backward 7 ms instead of 20 ms; Gumbel-softmax at batch 500 11 ms instead of
    21 ms; on telco's 18 spans of 2-4 levels 1.5 ms instead of 2.4 ms). Sampling
    (``sample_codes``, ``inverse_cdf_codes``, ``codes``) keeps the width groups.
    """

    def __init__(self, layout: Sequence[Span]) -> None:
        pos = 0
        tanh_cols: list[int] = []
        linear_cols: list[int] = []
        soft: list[_SoftSpan] = []
        for span in layout:
            if span.kind == Activation.SOFTMAX:
                soft.append(_SoftSpan(len(soft), pos, span.width, span.role, span.column))
            elif span.kind == Activation.TANH:
                tanh_cols.extend(range(pos, pos + span.width))
            else:
                linear_cols.extend(range(pos, pos + span.width))
            pos += span.width
        self.n_features = pos
        self.soft = soft
        self.n_soft = len(soft)
        self.max_width = max((s.width for s in soft), default=1)
        self.tanh_cols = torch.tensor(tanh_cols, dtype=torch.long)
        self.linear_cols = torch.tensor(linear_cols, dtype=torch.long)
        self.value_cols = torch.tensor(sorted(tanh_cols + linear_cols), dtype=torch.long)
        self.is_tanh_value = torch.tensor([c in set(tanh_cols) for c in sorted(tanh_cols + linear_cols)])
        self.groups: list[_WidthGroup] = []
        for members in width_groups([s.width for s in soft]):
            width = max(soft[i].width for i in members)
            # gather[j, g] = column of slot j of the group's g-th span; n_features = padding
            gather = np.full((width, len(members)), pos, dtype=np.int64)
            for g, i in enumerate(members):
                s = soft[i]
                gather[:s.width, g] = np.arange(s.start, s.start + s.width)
            self.groups.append(_WidthGroup(torch.tensor(members, dtype=torch.long), width,
                                           torch.from_numpy(gather.reshape(-1))))
        order = torch.cat([g.spans for g in self.groups]) if self.groups else torch.zeros(0, dtype=torch.long)
        # per-group results are concatenated in group order; ``unpermute`` restores span order
        self.unpermute = torch.argsort(order)
        self.identity_order = bool((order == torch.arange(self.n_soft)).all())
        self.soft_cols = torch.tensor([c for s in soft for c in range(s.start, s.start + s.width)],
                                      dtype=torch.long)
        self.widths = torch.tensor([s.width for s in soft], dtype=torch.long)
        self.starts = torch.tensor([s.start for s in soft], dtype=torch.long)
        # segmented layout: the span of every softmax slot (in ``soft_cols`` order)
        self.slot_span = torch.repeat_interleave(torch.arange(self.n_soft), self.widths)
        # (slots, spans) 0/1 matrix: a span's sum is one small matrix product (6x faster
        # than index_add along dim 1 at (500, 462) -> (500, 14)), its transpose spreads a
        # per-span value back over the span's slots (exact: one term is 1, the others 0)
        self.slot_onehot = torch.zeros((len(self.slot_span), self.n_soft))
        self.slot_onehot[torch.arange(len(self.slot_span)), self.slot_span] = 1.0
        self.slot_onehot_t = self.slot_onehot.t().contiguous()
        self.all_soft = self.soft_cols.numel() == pos
        # ``activate`` assembles [value columns | softmax slots] and puts them back in
        # matrix order with one gather
        other = sorted(set(range(pos)) - set(self.soft_cols.tolist()))
        self.other_cols = torch.tensor(other, dtype=torch.long)
        tanh_set = set(tanh_cols)
        self.other_is_tanh = torch.tensor([c in tanh_set for c in other], dtype=torch.bool)
        assembled = torch.cat([self.other_cols, self.soft_cols])
        self.assemble_order = torch.argsort(assembled)
        self.assembled_identity = bool((assembled == torch.arange(pos)).all())

    @property
    def padded_slots(self) -> int:
        """Slots per row of the grouped padded tensors (the real slots plus padding)."""
        return sum(g.width * len(g.spans) for g in self.groups)

    # -- softmax spans ------------------------------------------------------------------
    def grouped_logits(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """One ``(batch, group_width, spans_in_group)`` tensor per width group, ``-inf`` padding."""
        b = logits.shape[0]
        ext = torch.cat([logits, logits.new_full((b, 1), -torch.inf)], dim=1)
        return [ext[:, g.gather].reshape(b, g.width, len(g.spans)) for g in self.groups]

    def _in_span_order(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """Concatenate per-group ``(batch, spans_in_group)`` results into span order."""
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return out if self.identity_order else out[:, self.unpermute]

    def codes(self, matrix: torch.Tensor) -> torch.Tensor:
        """Index of the hot slot of every softmax span, ``(rows, n_soft)`` int64."""
        if self.n_soft == 0:
            return torch.zeros((matrix.shape[0], 0), dtype=torch.long)
        # ``max(dim=1).indices``, see sample_codes
        return self._in_span_order([p.max(dim=1).indices for p in self.grouped_logits(matrix)])

    def _soft_slots(self, logits: torch.Tensor) -> torch.Tensor:
        """The softmax slots of ``logits``, ``(batch, real slots)``."""
        return logits if self.all_soft else torch.index_select(logits, 1, self.soft_cols)

    def _segment_exp(self, slots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(m, e, total)``: every span's maximum ``m`` ``(batch, n_soft)`` (a constant for
        autograd: ``m + log sum exp(x - m)`` does not depend on it), ``e = exp(x - m[span])``
        per slot and every span's sum of ``e``."""
        b = slots.shape[0]
        onehot, spread = self._onehots(slots.dtype)
        with torch.no_grad():
            # along dim 0 of the transposed slots: 12x faster than along dim 1
            m = slots.new_full((self.n_soft, b), -torch.inf).scatter_reduce_(
                0, self.slot_span.unsqueeze(1).expand(-1, b), slots.t().contiguous(), "amax").t()
        e = torch.exp(slots - m @ spread)
        return m, e, e @ onehot

    def _onehots(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        if dtype == self.slot_onehot.dtype:
            return self.slot_onehot, self.slot_onehot_t
        return self.slot_onehot.to(dtype), self.slot_onehot_t.to(dtype)

    def span_logsumexp(self, logits: torch.Tensor) -> torch.Tensor:
        """``log sum exp`` of every softmax span's logits, ``(batch, n_soft)`` (segmented,
        see the class docstring)."""
        m, _, total = self._segment_exp(self._soft_slots(logits))
        return m + torch.log(total)

    def span_nll(self, logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Per-span cross-entropy ``-log softmax(logits)[code]``, ``(batch, n_soft)``."""
        target = logits.gather(1, self.starts.unsqueeze(0) + codes)
        return self.span_logsumexp(logits) - target

    def cross_entropy(self, logits: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Per-row sum over softmax spans of the cross-entropy with target ``codes``."""
        if self.n_soft == 0:
            return logits.new_zeros(logits.shape[0])
        return self.span_nll(logits, codes).sum(dim=1)

    def log_prob(self, logits: torch.Tensor, span: torch.Tensor,
                 category: torch.Tensor) -> torch.Tensor:
        """``log softmax`` of row ``i``'s span ``span[i]`` at slot ``category[i]``, ``(batch,)``."""
        lse = self.span_logsumexp(logits).gather(1, span.unsqueeze(1)).squeeze(1)
        target = logits.gather(1, (self.starts[span] + category).unsqueeze(1)).squeeze(1)
        return target - lse

    def activate(self, raw: torch.Tensor, *, tau: float | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Apply each span's activation: tanh on TANH values, (Gumbel-)softmax on softmax spans.

        With ``tau`` the softmax spans use Gumbel-softmax at temperature ``tau`` (one noise
        draw per real slot from ``generator``); without it a plain softmax. Segmented over
        the real slots (see the class docstring): no Python loop, no padding.
        """
        values = torch.index_select(raw, 1, self.other_cols) if self.other_cols.numel() else None
        if values is not None and self.tanh_cols.numel():
            values = torch.where(self.other_is_tanh, torch.tanh(values), values)
        if not self.n_soft:
            assert values is not None
            return values
        slots = self._soft_slots(raw)
        if tau is not None:
            u = torch.rand(slots.shape, generator=generator, dtype=raw.dtype)
            gumbel = -torch.log(-torch.log(u.clamp_(1e-10, 1.0 - 1e-7)))
            slots = (slots + gumbel) / tau
        _, e, total = self._segment_exp(slots)
        probs = e / (total @ self._onehots(slots.dtype)[1])
        if values is None:
            return probs
        out = torch.cat([values, probs], dim=1)
        return out if self.assembled_identity else torch.index_select(out, 1, self.assemble_order)

    def one_hot(self, codes: torch.Tensor, n_rows: int, dtype: torch.dtype = torch.float32
                ) -> torch.Tensor:
        """Matrix with the softmax spans set to one-hot ``codes`` (value columns zero)."""
        out = torch.zeros((n_rows, self.n_features), dtype=dtype)
        if self.n_soft:
            cols = self.starts.unsqueeze(0) + codes
            out.scatter_(1, cols, 1.0)
        return out

    def sample_codes(self, logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Draw one category per softmax span from softmax(logits), ``(rows, n_soft)``."""
        if self.n_soft == 0:
            return torch.zeros((logits.shape[0], 0), dtype=torch.long)
        drawn = []
        for padded in self.grouped_logits(logits):
            # Gumbel-max: argmax(logits + Gumbel noise) is an exact categorical draw.
            u = torch.rand(padded.shape, generator=generator, dtype=logits.dtype)
            gumbel = -torch.log(-torch.log(u.clamp_(1e-10, 1.0 - 1e-7)))
            # ``max(dim=1).indices``, not ``argmax(dim=1)``: over a middle dimension torch's
            # CPU argmax took 7.7 ms on a (4096, 4, 18) tensor, max 0.7 ms (same first-maximum
            # rule)
            drawn.append((padded + gumbel).max(dim=1).indices)
        return self._in_span_order(drawn)

    def inverse_cdf_codes(self, logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """One category per span by inverse CDF of softmax(logits) at ``u`` ``(rows, n_soft)``
        (one uniform per span, not one per slot as :meth:`sample_codes` needs)."""
        if self.n_soft == 0:
            return torch.zeros((logits.shape[0], 0), dtype=torch.long)
        drawn = []
        for g, padded in zip(self.groups, self.grouped_logits(logits), strict=True):
            cdf = torch.softmax(padded, dim=1).cumsum_(dim=1)
            count = (cdf < u[:, g.spans].unsqueeze(1)).sum(dim=1)
            # rounding can leave the last cumulative sum just below a draw near 1
            drawn.append(torch.minimum(count, self.widths[g.spans].unsqueeze(0) - 1))
        return self._in_span_order(drawn)

    def soft_blocks(self) -> list[tuple[int, int]]:
        """``(start, width)`` of every softmax span in the matrix (for :func:`wide_blocks`)."""
        return [(s.start, s.width) for s in self.soft]

    def soft_index(self, column: str, role: SpanRole = SpanRole.CATEGORY) -> int:
        for s in self.soft:
            if s.column == column and s.role == role:
                return s.index
        raise KeyError(column)


# -- condition vectors (training-by-sampling) -----------------------------------------------

def cdf_table(probs: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Row-wise cumulative sums of a padded ``(columns, max_width)`` probability table (rows
    normalised first); padding slots are 2, never at or below a uniform draw in [0, 1)."""
    probs = probs.to(torch.float64)
    cdf = torch.cumsum(probs / probs.sum(dim=1, keepdim=True), dim=1)
    slot = torch.arange(probs.shape[1]).unsqueeze(0)
    # the last real slot is exactly 1 (rounding could leave it below a draw near 1)
    cdf = cdf.masked_fill(slot == widths.unsqueeze(1) - 1, 1.0)
    return cdf.masked_fill(slot >= widths.unsqueeze(1), 2.0)


def draw_categories(cdf_rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One category per row by inverse CDF: the number of slots whose cumulative probability
    is at most a uniform draw (``torch.multinomial`` measured 2-3x slower per batch)."""
    u = torch.rand((cdf_rows.shape[0], 1), generator=generator, dtype=cdf_rows.dtype)
    return (cdf_rows <= u).sum(dim=1)


def stacked_cdf(probs: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """The rows of a padded ``(columns, max_width)`` probability table as one increasing
    vector: row ``j``'s cumulative probabilities plus ``j``, padding left out (length
    ``widths.sum()``), for :func:`draw_stacked`."""
    cdf = cdf_table(probs, widths)
    slot = torch.arange(probs.shape[1]).unsqueeze(0)
    shift = torch.arange(probs.shape[0], dtype=cdf.dtype).unsqueeze(1)
    return (cdf + shift)[slot < widths.unsqueeze(1)]


def draw_stacked(stacked: torch.Tensor, offsets: torch.Tensor, column: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
    """One category of ``column[i]`` per row by inverse CDF: a binary search of ``column + u``
    in :func:`stacked_cdf` (log of the levels per row, where :func:`draw_categories` compares
    every padded slot)."""
    u = torch.rand(column.shape, generator=generator, dtype=stacked.dtype)
    found = torch.searchsorted(stacked, column.to(stacked.dtype) + u, right=True)
    # the last slot of row j is exactly j + 1 > j + u: the search never leaves the row
    return found - offsets[column]


class ConditionSampler:
    """Condition vectors over discrete CATEGORY spans, with training-by-sampling tables.

    The condition vector is the concatenation of one one-hot block per discrete column
    (``n_options`` wide in total); exactly one slot is hot per row. Training draws the
    column uniformly, the category with probability proportional to ``log(1 + count)``
    (so rare categories are seen), then a real row holding that category — three
    vectorised lookups per batch.
    """

    def __init__(self, plan: SpanPlan, codes: torch.Tensor, log_frequency: bool = True) -> None:
        self.spans = [s for s in plan.soft if s.role == SpanRole.CATEGORY]
        self.n_columns = len(self.spans)
        self.span_index = torch.tensor([s.index for s in self.spans], dtype=torch.long)
        widths = [s.width for s in self.spans]
        self.offsets = torch.tensor(np.concatenate([[0], np.cumsum(widths)[:-1]]) if widths
                                    else [], dtype=torch.long)
        self.n_options = int(sum(widths))
        self.widths = torch.tensor(widths, dtype=torch.long)
        if self.n_columns == 0:
            return
        n = codes.shape[0]
        cat = codes[:, self.span_index]                      # (n, n_columns)
        option = cat + self.offsets.unsqueeze(0)             # global option id per cell
        counts = torch.bincount(option.reshape(-1), minlength=self.n_options).to(torch.float64)
        self.counts = counts
        weight = torch.log1p(counts) if log_frequency else counts
        max_w = max(widths)
        table = torch.zeros((self.n_columns, max_w), dtype=torch.float64)
        for j, s in enumerate(self.spans):
            w = weight[self.offsets[j]: self.offsets[j] + s.width]
            table[j, :s.width] = w / w.sum()
        self.cat_probs = table.to(torch.float32)
        # empirical (not log) frequencies: used when sampling without conditions
        emp = torch.zeros_like(table)
        for j, s in enumerate(self.spans):
            c = counts[self.offsets[j]: self.offsets[j] + s.width]
            emp[j, :s.width] = c / c.sum()
        self.freq_probs = emp.to(torch.float32)
        # rows grouped by option: rows_sorted[start[o]: start[o] + counts[o]] hold option o
        order = torch.argsort(option.T.reshape(-1), stable=True)   # column-major: col j block
        self.rows_sorted = order % n
        self.option_start = torch.cumsum(counts.to(torch.long), 0) - counts.to(torch.long)
        self.option_count = counts.to(torch.long)

    def draw(self, batch: int, generator: torch.Generator
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training draw: ``(cond, column, category, real_row)`` for ``batch`` rows."""
        column = torch.randint(self.n_columns, (batch,), generator=generator)
        category = draw_stacked(stacked_cdf(self.cat_probs, self.widths), self.offsets, column,
                                generator)
        option = self.offsets[column] + category
        u = torch.rand(batch, generator=generator, dtype=torch.float64)
        pick = (u * self.option_count[option]).long()
        rows = self.rows_sorted[self.option_start[option] + pick]
        return self.vector(option), column, category, rows

    def draw_by_frequency(self, batch: int, generator: torch.Generator
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(cond, column, category)``: a column uniformly, a category by ``freq_probs``."""
        column = torch.randint(self.n_columns, (batch,), generator=generator)
        category = draw_stacked(stacked_cdf(self.freq_probs, self.widths), self.offsets, column,
                                generator)
        return self.vector(self.offsets[column] + category), column, category

    def draw_for_sampling(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Unconditional sampling: a column uniformly, a category by its real frequency."""
        return self.draw_by_frequency(batch, generator)[0]

    def vector(self, option: torch.Tensor) -> torch.Tensor:
        cond = torch.zeros((option.shape[0], self.n_options))
        cond.scatter_(1, option.unsqueeze(1), 1.0)
        return cond

    def option(self, column_position: int, category: int) -> int:
        return int(self.offsets[column_position]) + int(category)


def record_epoch(history: list[dict[str, float]], record: dict[str, float], epochs: int,
                 progress: Progress, log: Callable[..., None], name: str, mode: str = "") -> None:
    """Keep one epoch's numbers in ``history``, log them ("vae stream epoch 3/60 recon 0.1234
    kl 0.0123", every key after ``epoch`` in order) and report ``<name>.fit`` progress.
    ``mode``: the kind of fit, e.g. "dp" or "stream" (empty for the in-memory fit)."""
    history.append(record)
    numbers = " ".join(f"{key} {value:.4f}" for key, value in record.items() if key != "epoch")
    log("%s epoch %d/%d %s", f"{name} {mode}" if mode else name, record["epoch"], epochs, numbers)
    progress(f"{name}.fit", int(record["epoch"]), epochs)


class TrainingRecord:
    """Mixin: archive a torch generator's training record (epochs, best epoch, time, losses)."""

    epochs_run_: int | None
    best_epoch_: int | None
    fit_seconds_: float | None
    history_: list[Any]

    def _get_extra(self) -> dict[str, Any]:
        return {"epochs_run": self.epochs_run_, "best_epoch": self.best_epoch_,
                "fit_seconds": self.fit_seconds_, "history": self.history_}

    def _set_extra(self, extra: dict[str, Any]) -> None:
        self.epochs_run_ = extra.get("epochs_run")
        self.best_epoch_ = extra.get("best_epoch")
        self.fit_seconds_ = extra.get("fit_seconds")
        self.history_ = extra.get("history", [])

    def _finish_training(self, net: nn.Module, best: tuple[Any, ...], started: float) -> None:
        """Restore the best weights (early stopping), record the run and switch to eval."""
        if best[1] is not None:
            net.load_state_dict(best[1])
        self.epochs_run_ = len(self.history_)
        self.best_epoch_ = best[2] if best[1] is not None else self.epochs_run_
        self.fit_seconds_ = time.perf_counter() - started
        net.eval()

    def _finish_dp_training(self, dp: Any, net: nn.Module, started: float) -> None:
        """After DP-SGD (no early stopping): check the plan ran to the end, record the noise,
        sample rate and steps actually used, the run and its time, and switch to eval."""
        dp.check_finished()
        self.dp_noise_multiplier_ = dp.noise_multiplier
        self.dp_sample_rate_ = dp.sample_rate
        self.dp_steps_ = dp.steps_done
        self._finish_training(net, (None, None, None), started)
