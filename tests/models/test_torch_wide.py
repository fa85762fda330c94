"""Wide categorical columns (issue 24): embeddings in, low-rank logits out.

``WideEmbed`` / ``WideHead`` against per-column references, the ``wide_levels`` threshold,
and vae / ctgan / ddpm on a table with a 60-level column: the layers are there (and absent
with ``wide_levels=None``), samples hold only real levels and follow the column, archives
round-trip, archives from before the layers still load, and DP-SGD runs through them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import synthdata as sd
from synthdata.errors import ConfigError

torch = pytest.importorskip("torch")

from synthdata.models._torch import (  # noqa: E402
    WideEmbed,
    WideHead,
    has_wide_layers,
    wide_blocks,
    wide_embed,
    wide_head,
)

LEVELS = 60
FAST = {"vae": {"epochs": 2, "batch_size": 200},
        "ctgan": {"epochs": 2, "batch_size": 200, "generator_dims": (32,),
                  "discriminator_dims": (32,)},
        "ddpm": {"epochs": 2, "hidden_dims": (32, 32), "sampling_steps": 5}}


@st.composite
def _blocks(draw):
    """A column count and non-overlapping (start, width) blocks inside it."""
    widths = draw(st.lists(st.integers(1, 6), min_size=1, max_size=4))
    gaps = draw(st.lists(st.integers(0, 3), min_size=len(widths) + 1, max_size=len(widths) + 1))
    blocks, pos = [], gaps[0]
    for w, g in zip(widths, gaps[1:], strict=True):
        blocks.append((pos, w))
        pos += w + g
    order = draw(st.permutations(range(len(blocks))))
    return pos, [blocks[i] for i in order]


@settings(max_examples=25, deadline=None)
@given(_blocks(), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_embed_keeps_other_columns_and_mixes_each_block_table(spec, dim, seed):
    n, blocks = spec
    torch.manual_seed(seed)
    layer = WideEmbed(n, blocks, dim)
    x = torch.rand((5, n))
    y = layer(x)
    inside = {c for s, w in blocks for c in range(s, s + w)}
    keep = [c for c in range(n) if c not in inside]
    assert y.shape == (5, len(keep) + dim * len(blocks)) == (5, layer.n_out)
    assert torch.equal(y[:, :len(keep)], x[:, keep])
    for j, (s, w) in enumerate(blocks):
        table = layer.tables[j].weight                # (dim, width)
        want = x[:, s:s + w] @ table.T
        assert torch.allclose(y[:, len(keep) + j * dim:len(keep) + (j + 1) * dim], want, atol=1e-6)
    # a one-hot block is a lookup of the table's column
    s, w = blocks[0]
    hot = torch.zeros((1, n))
    hot[0, s + w - 1] = 1.0
    assert torch.allclose(layer(hot)[0, len(keep):len(keep) + dim], layer.tables[0].weight[:, w - 1])


@settings(max_examples=25, deadline=None)
@given(_blocks(), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_head_puts_every_output_column_in_its_place(spec, dim, seed):
    n, blocks = spec
    torch.manual_seed(seed)
    head = WideHead(7, n, blocks, dim)
    h = torch.randn((4, 7))
    out = head(h)
    assert out.shape == (4, n)
    base = head.base(h)
    inside = {c for s, w in blocks for c in range(s, s + w)}
    keep = [c for c in range(n) if c not in inside]
    assert torch.allclose(out[:, keep], base[:, :len(keep)])
    for j, (s, w) in enumerate(blocks):
        units = base[:, len(keep) + j * dim:len(keep) + (j + 1) * dim]
        assert torch.allclose(out[:, s:s + w], head.heads[j](units), atol=1e-6)


def test_no_wide_blocks_means_plain_layers_and_threshold_is_strict():
    assert isinstance(wide_head(8, 5, [], 4), torch.nn.Linear)
    ident = wide_embed(5, [], 4)
    x = torch.rand((2, 5))
    assert ident(x) is x and ident.n_out == 5 and not list(ident.parameters())
    assert not has_wide_layers(torch.nn.Linear(3, 2).state_dict())
    spans = [(0, 2), (2, 50), (52, 51), (103, 3)]
    assert wide_blocks(spans, 50) == [(52, 51)]
    assert wide_blocks(spans, 2, offset=10) == [(12, 50), (62, 51), (113, 3)]
    assert wide_blocks(spans, None) == []
    with pytest.raises(ValueError, match="overlap"):
        WideEmbed(10, [(0, 4), (3, 2)], 2)


def _table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # a skewed 60-level code (geometric-like weights), a 3-level column tied to it, a number
    weights = 0.97 ** np.arange(LEVELS)
    code = rng.choice(LEVELS, size=n, p=weights / weights.sum())
    group = np.where(code < 5, "low", np.where(code < 20, "mid", "high"))
    return pd.DataFrame({"code": [f"k{c:02d}" for c in code], "group": group,
                         "x": rng.normal(size=n) + code / 10})


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return _table()


def _net(gen):
    return getattr(gen, "net_", None) or gen.generator_


def _make(kind: str, schema, levels, **extra):
    if kind == "ddpm":  # a class setting for ddpm, a constructor parameter for vae / ctgan
        gen = sd.make_generator(kind, schema, seed=0, **{**FAST[kind], **extra})
        gen.wide_levels = levels
        return gen
    return sd.make_generator(kind, schema, seed=0, wide_levels=levels, **{**FAST[kind], **extra})


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["vae", "ctgan", "ddpm"])
def test_generators_embed_wide_columns_and_round_trip(kind, table, tmp_path):
    schema = sd.Schema.infer(table)
    gen = _make(kind, schema, 50).fit(table)
    state = _net(gen).state_dict()
    assert has_wide_layers(state)
    # the code column is the only wide one: its embedding tables are as wide as its levels
    # (+1 if the layout keeps a missing slot)
    tables = [v for k, v in state.items() if ".tables." in k or k.startswith("tables.")]
    assert table["code"].nunique() > 50
    assert tables and all(t.shape[1] in (table["code"].nunique(), table["code"].nunique() + 1)
                          for t in tables)
    synth = gen.sample(2000, seed=1)
    assert set(synth["code"].dropna()) <= set(table["code"])
    loaded = sd.load_generator(gen.save(tmp_path / f"{kind}.synth"))
    pd.testing.assert_frame_equal(gen.sample(300, seed=3), loaded.sample(300, seed=3))
    plain = _make(kind, schema, None).fit(table)
    assert not has_wide_layers(_net(plain).state_dict())
    assert sum(p.numel() for p in _net(gen).parameters()) < \
        sum(p.numel() for p in _net(plain).parameters())


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["vae", "ctgan", "ddpm"])
def test_state_from_before_wide_layers_still_loads(kind, table):
    schema = sd.Schema.infer(table)
    old = _make(kind, schema, None).fit(table)
    state = old._get_torch_state()
    fresh = _make(kind, schema, 50).fit(table)      # defaults now embed the column
    fresh._set_torch_state(state)
    assert fresh.wide_levels is None
    pd.testing.assert_frame_equal(old.sample(200, seed=4), fresh.sample(200, seed=4))


@pytest.mark.parametrize("kind", ["vae", "ctgan"])
@pytest.mark.parametrize(("param", "value", "message"), [
    ("wide_levels", 1, "wide_levels must be an integer >= 2"),
    ("wide_levels", "50", "wide_levels must be an integer >= 2"),
    ("wide_dim", 0, "wide_dim must be a positive integer"),
])
def test_bad_wide_parameters_are_config_errors(kind, param, value, message, table):
    gen = sd.make_generator(kind, sd.Schema.infer(table), **{param: value})
    with pytest.raises(ConfigError, match=f"{kind}: parameter {message}"):
        gen.fit(table)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["vae", "ctgan"])
def test_dp_sgd_trains_through_wide_layers(kind, table):
    pytest.importorskip("opacus")
    from synthdata.privacy import DPConfig

    schema = sd.Schema.infer(table).with_overrides({"columns": [
        {"name": "code", "categories": sorted(table["code"].unique()), "public": True},
        {"name": "group", "categories": ["high", "low", "mid"], "public": True},
        {"name": "x", "min": -4.0, "max": 10.0, "public": True}]})
    gen = sd.make_generator(kind, schema, seed=0, wide_levels=50,
                            privacy=DPConfig(epsilon=3.0), **FAST[kind])
    gen.fit(table)
    assert has_wide_layers(_net(gen).state_dict())
    assert gen.ledger.total()[0] <= 3.0
    assert set(gen.sample(500, seed=1)["code"].dropna()) <= set(table["code"])


def test_ddpm_with_wide_layers_samples_through_the_whole_network(table):
    """The fast sampler keeps a running sum of the plain first layer; with a wide embedding
    and a low-rank head it must run the whole network instead (it once read ``out.weight`` of
    the low-rank head and failed)."""
    small = table.head(300)
    gen = _make("ddpm", sd.Schema.infer(small), 50, epochs=1).fit(small)
    assert has_wide_layers(_net(gen).state_dict())
    synth = gen.sample(200, seed=1)
    assert len(synth) == 200 and set(synth["code"].dropna()) <= set(small["code"])
