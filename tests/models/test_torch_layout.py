"""Shared torch helpers: categorical draws by inverse CDF and the slot-major span layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from synthdata.models._torch import SpanPlan, cdf_table, draw_categories, draw_stacked, stacked_cdf  # noqa: E402
from synthdata.transform.columns import Activation, Span, SpanRole  # noqa: E402

# per column, probabilities of its levels (some zero; a column of zeros gets a first level)
PROB_ROWS = st.lists(st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 1.0)), min_size=1,
                              max_size=6), min_size=1, max_size=5)


def _padded(rows: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The columns' probabilities zero-padded to the widest, and each column's width."""
    rows = [r if sum(r) > 0 else [1.0] + r[1:] for r in rows]
    probs = torch.zeros((len(rows), max(len(r) for r in rows)), dtype=torch.float64)
    for j, r in enumerate(rows):
        probs[j, :len(r)] = torch.tensor(r, dtype=torch.float64)
    return probs, torch.tensor([len(r) for r in rows])


@settings(max_examples=30, deadline=None)
@given(PROB_ROWS, st.integers(0, 2**31 - 1))
def test_draws_follow_the_probabilities_and_never_hit_padding(rows, seed):
    probs, widths = _padded(rows)
    n = 20_000
    column = torch.arange(len(rows)).repeat_interleave(n)
    drawn = draw_categories(cdf_table(probs, widths)[column], torch.Generator().manual_seed(seed))
    for j, r in enumerate(rows):
        got = torch.bincount(drawn[j * n:(j + 1) * n], minlength=probs.shape[1]).double() / n
        want = probs[j] / probs[j].sum()
        assert (got[len(r):] == 0).all()                 # padding never drawn
        assert (got[want == 0] == 0).all()                 # impossible categories never drawn
        assert torch.allclose(got, want, atol=0.02)        # frequencies match


def test_slot_major_padding_gathers_every_span():
    layout = [Span("x", Activation.LINEAR, 1, SpanRole.VALUE),
              Span("a", Activation.SOFTMAX, 3, SpanRole.CATEGORY),
              Span("b", Activation.SOFTMAX, 2, SpanRole.CATEGORY)]
    plan = SpanPlan(layout)
    logits = torch.tensor([[9.0, 0.1, 0.2, 0.3, 0.4, 0.5]])
    (padded,) = plan.grouped_logits(logits)            # one group: (batch, width, spans)
    assert padded.shape == (1, 3, 2)
    assert padded[0, :, 0].tolist() == pytest.approx([0.1, 0.2, 0.3]) or \
        padded[0, :, 1].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert sorted(padded[0].reshape(-1).tolist()) == pytest.approx(
        [-np.inf, 0.1, 0.2, 0.3, 0.4, 0.5])
    one_hot = torch.tensor([[0.5, 0.0, 1.0, 0.0, 1.0, 0.0]])
    assert plan.codes(one_hot).tolist() == [[1, 0]]
    probs = plan.activate(logits)
    assert probs[0, 1:4].sum() == pytest.approx(1.0) and probs[0, 4:].sum() == pytest.approx(1.0)
    assert probs[0, 0] == pytest.approx(9.0)           # values pass through


def _wide_layout(widths):
    layout, pos = [Span("v", Activation.LINEAR, 1, SpanRole.VALUE)], 1
    for k, w in enumerate(widths):
        layout.append(Span(f"c{k}", Activation.SOFTMAX, w, SpanRole.CATEGORY))
        pos += w
    return layout


def test_width_groups_keep_padding_near_the_real_levels():
    widths = [2, 2, 3, 2, 5, 111, 88, 102, 27, 9, 7, 61, 81, 2]
    plan = SpanPlan(_wide_layout(widths))
    assert len(plan.groups) > 1
    # one padded block would hold 14 x 111 slots; the groups hold little more than the levels
    assert plan.padded_slots < 1.4 * sum(widths) < len(widths) * max(widths)
    members = sorted(int(i) for g in plan.groups for i in g.spans)
    assert members == list(range(len(widths)))          # every span in exactly one group
    narrow = SpanPlan(_wide_layout([2, 3, 3, 4, 3, 2]))
    assert len(narrow.groups) == 1                        # narrow tables: one block, as before


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 70), min_size=1, max_size=12), st.integers(0, 2**31 - 1))
def test_grouped_span_ops_match_a_per_span_reference(widths, seed):
    plan = SpanPlan(_wide_layout(widths))
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn((7, plan.n_features), generator=g, dtype=torch.float64) * 3
    codes = torch.stack([torch.randint(w, (7,), generator=g) for w in widths], dim=1)
    nll = plan.span_nll(logits, codes)
    probs = plan.activate(logits)
    for k, s in enumerate(plan.soft):
        block = logits[:, s.start:s.start + s.width]
        ref = -torch.log_softmax(block, dim=1).gather(1, codes[:, k:k + 1]).squeeze(1)
        assert torch.allclose(nll[:, k], ref)
        assert torch.allclose(probs[:, s.start:s.start + s.width], torch.softmax(block, dim=1))
        assert torch.allclose(plan.log_prob(logits, torch.full((7,), k), codes[:, k]), -ref)
    assert torch.allclose(plan.cross_entropy(logits, codes), nll.sum(dim=1))
    one_hot = plan.one_hot(codes, 7, dtype=torch.float64)
    assert plan.codes(one_hot).tolist() == codes.tolist()
    drawn = plan.sample_codes(logits, g)
    assert ((drawn >= 0) & (drawn < plan.widths)).all()  # padding never drawn
    u = torch.rand((7, len(widths)), generator=g, dtype=torch.float64)
    inv = plan.inverse_cdf_codes(logits, u)
    for k, s in enumerate(plan.soft):
        cdf = torch.softmax(logits[:, s.start:s.start + s.width], dim=1).cumsum(dim=1)
        want = torch.minimum((cdf < u[:, k:k + 1]).sum(dim=1), torch.tensor(s.width - 1))
        assert inv[:, k].tolist() == want.tolist()


def test_sample_codes_follow_the_softmax_in_every_group():
    widths = [2, 90, 3, 60]
    plan = SpanPlan(_wide_layout(widths))
    logits = torch.zeros((1, plan.n_features))
    logits[0, plan.soft[1].start + 5] = 3.0                  # a favoured level in the 90-wide span
    drawn = plan.sample_codes(logits.expand(20_000, -1), torch.Generator().manual_seed(1))
    share = float((drawn[:, 1] == 5).double().mean())
    want = math.exp(3) / (math.exp(3) + 89)
    assert share == pytest.approx(want, abs=0.01)
    assert float((drawn[:, 0] == 0).double().mean()) == pytest.approx(0.5, abs=0.02)


@settings(max_examples=20, deadline=None)
@given(PROB_ROWS, st.integers(0, 2**31 - 1))
def test_stacked_draws_follow_the_probabilities(rows, seed):
    probs, widths = _padded(rows)
    offsets = torch.cumsum(widths, 0) - widths
    n = 20_000
    column = torch.arange(len(rows)).repeat_interleave(n)
    drawn = draw_stacked(stacked_cdf(probs, widths), offsets, column,
                         torch.Generator().manual_seed(seed))
    for j, r in enumerate(rows):
        got = torch.bincount(drawn[j * n:(j + 1) * n], minlength=probs.shape[1]).double() / n
        want = probs[j] / probs[j].sum()
        assert (got[len(r):] == 0).all()
        assert (got[want == 0] == 0).all()
        assert torch.allclose(got, want, atol=0.02)


def test_segmented_ops_follow_an_interleaved_layout_and_stay_finite_far_apart():
    # softmax spans between value columns (tanh and linear): activate must put every column
    # back in place; spans 400 logits apart must not underflow (a per-row maximum would:
    # exp(-400) is 0 in float32, so the low span's log-sum-exp would be -inf)
    layout = [Span("a", Activation.SOFTMAX, 3, SpanRole.CATEGORY),
              Span("t", Activation.TANH, 1, SpanRole.VALUE),
              Span("b", Activation.SOFTMAX, 2, SpanRole.CATEGORY),
              Span("y", Activation.LINEAR, 1, SpanRole.VALUE)]
    plan = SpanPlan(layout)
    logits = torch.tensor([[200.0, 201.0, 199.0, 0.5, -200.0, -202.0, -3.0],
                           [0.0, 0.0, 0.0, -0.5, 1.0, 0.0, 7.0]], requires_grad=True)
    probs = plan.activate(logits)
    for start, width in ((0, 3), (4, 2)):
        want = torch.softmax(logits[:, start:start + width].double(), dim=1).float()
        assert torch.allclose(probs[:, start:start + width], want, atol=1e-6)
    assert torch.allclose(probs[:, 3], torch.tanh(logits[:, 3]))
    assert torch.equal(probs[:, 6], logits[:, 6])
    codes = torch.tensor([[1, 0], [2, 1]])
    nll = plan.span_nll(logits, codes)
    ref_b = -torch.log_softmax(logits[:, 4:6].double(), dim=1).gather(1, codes[:, 1:])
    assert torch.isfinite(nll).all()
    assert torch.allclose(nll[:, 1:].double(), ref_b, atol=1e-5)
    (nll.sum() + probs[:, [0, 4]].sum()).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    # Gumbel-softmax: one draw per real slot, reproducible from the generator
    a = plan.activate(logits.detach(), tau=0.2, generator=torch.Generator().manual_seed(3))
    b = plan.activate(logits.detach(), tau=0.2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.isfinite(a).all()
    assert torch.allclose(a[:, :3].sum(dim=1), torch.ones(2)) and not torch.equal(a, probs)


def test_adam_matches_the_textbook_update():
    from synthdata.models._torch import Adam

    g = torch.Generator().manual_seed(0)
    start = [torch.randn((5, 3), generator=g), torch.randn(3, generator=g)]
    grads = [[torch.randn(p.shape, generator=g) for p in start] for _ in range(4)]
    lr, (b1, b2), eps, wd = 0.01, (0.5, 0.9), 1e-8, 1e-3
    results = []
    for fused in (True, False):
        params = [torch.nn.Parameter(p.clone()) for p in start]
        opt = Adam(params, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
        if not fused:
            opt._fused = None          # the _foreach path (torch without the fused kernel)
        for step in grads:
            for p, gr in zip(params, step, strict=True):
                p.grad = gr.clone()
            opt.step()
        results.append([p.detach() for p in params])
    for k, p0 in enumerate(start):          # textbook Adam with L2 decay, in float64
        p, m, v = p0.double(), torch.zeros_like(p0.double()), torch.zeros_like(p0.double())
        for t, step in enumerate(grads, start=1):
            gr = step[k].double() + wd * p
            m, v = b1 * m + (1 - b1) * gr, b2 * v + (1 - b2) * gr * gr
            p = p - lr * (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps)
        for got in results:
            assert torch.allclose(got[k].double(), p, atol=1e-5)
        assert not torch.allclose(p, p0.double())
