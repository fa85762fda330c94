"""Shared torch helpers: categorical draws by inverse CDF and the slot-major span layout."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from synthdata.models._torch import SpanPlan, cdf_table, draw_categories  # noqa: E402
from synthdata.transform.columns import Activation, Span, SpanRole  # noqa: E402


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 1.0)), min_size=1, max_size=6),
                min_size=1, max_size=5),
       st.integers(0, 2**31 - 1))
def test_draws_follow_the_probabilities_and_never_hit_padding(rows, seed):
    rows = [r if sum(r) > 0 else [1.0] + r[1:] for r in rows]
    width = max(len(r) for r in rows)
    probs = torch.zeros((len(rows), width), dtype=torch.float64)
    for j, r in enumerate(rows):
        probs[j, :len(r)] = torch.tensor(r, dtype=torch.float64)
    widths = torch.tensor([len(r) for r in rows])
    n = 20_000
    column = torch.arange(len(rows)).repeat_interleave(n)
    drawn = draw_categories(cdf_table(probs, widths)[column], torch.Generator().manual_seed(seed))
    for j, r in enumerate(rows):
        got = torch.bincount(drawn[j * n:(j + 1) * n], minlength=width).double() / n
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
    padded = plan.padded_logits(logits)               # (batch, max_width, n_soft)
    assert padded.shape == (1, 3, 2)
    assert padded[0, :, 0].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert padded[0, :2, 1].tolist() == pytest.approx([0.4, 0.5])
    assert padded[0, 2, 1] == -np.inf
    one_hot = torch.tensor([[0.5, 0.0, 1.0, 0.0, 1.0, 0.0]])
    assert plan.codes(one_hot).tolist() == [[1, 0]]
    probs = plan.activate(logits)
    assert probs[0, 1:4].sum() == pytest.approx(1.0) and probs[0, 4:].sum() == pytest.approx(1.0)
    assert probs[0, 0] == pytest.approx(9.0)           # values pass through
