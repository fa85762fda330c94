import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import synthdata as sd
from synthdata.errors import ConfigError, DataError
from synthdata.schema import Schema


@pytest.fixture(scope="module")
def fitted(flchain):
    train = flchain.sample(3000, random_state=1).reset_index(drop=True)
    schema = Schema.infer(train)
    return train, schema, sd.make_generator("gmm", schema, seed=0).fit(train)


def test_samples_respect_schema(fitted):
    train, schema, gen = fitted
    synth = gen.sample(5000, seed=1)
    assert list(synth.columns) == list(train.columns)
    assert synth.dtypes.to_dict() == train.dtypes.to_dict()
    assert (synth["age"] == synth["age"].round()).all()
    assert synth["age"].between(train["age"].min(), train["age"].max()).all()
    assert set(synth["sex"].unique()) <= {"F", "M"}
    assert set(synth["chapter"].dropna().unique()) <= set(train["chapter"].dropna().unique())
    for col in ("creatinine", "chapter"):
        assert abs(synth[col].isna().mean() - train[col].isna().mean()) <= 0.02, col


def test_marginals_and_correlations_are_close(fitted, flchain):
    train, schema, gen = fitted
    synth = gen.sample(len(train), seed=2)
    from scipy.stats import ks_2samp

    for col in ("age", "kappa", "lambda", "futime"):
        assert ks_2samp(train[col], synth[col]).statistic < 0.06, col
    num = ["age", "kappa", "lambda", "futime", "death"]
    diff = np.abs(train[num].corr().to_numpy() - synth[num].corr().to_numpy()).mean()
    assert diff < 0.05


def test_conditions(fitted):
    _, _, gen = fitted
    out = gen.sample(500, conditions={"death": 1, "sex": "F"}, seed=3)
    assert (out["death"] == 1).all() and (out["sex"] == "F").all()
    # the condition moves correlated columns: deaths are older
    alive = gen.sample(2000, conditions={"death": 0}, seed=3)
    dead = gen.sample(2000, conditions={"death": 1}, seed=3)
    assert dead["age"].mean() > alive["age"].mean() + 5
    with pytest.raises(ConfigError, match="only discrete"):
        gen.sample(10, conditions={"age": 60})
    with pytest.raises(ConfigError, match="not seen in training"):
        gen.sample(10, conditions={"sex": "X"})
    with pytest.raises(ConfigError, match="unknown column"):
        gen.sample(10, conditions={"nope": 1})


def test_stream_and_seeded_sampling(fitted):
    _, _, gen = fitted
    a, b = gen.sample(100), gen.sample(100)
    assert not a.equals(b)
    pd.testing.assert_frame_equal(gen.sample(100, seed=5), gen.sample(100, seed=5))


def test_same_seed_same_model(flchain_small):
    schema = Schema.infer(flchain_small)
    one = sd.make_generator("gmm", schema, seed=7).fit(flchain_small).sample(200, seed=0)
    two = sd.make_generator("gmm", schema, seed=7).fit(flchain_small).sample(200, seed=0)
    pd.testing.assert_frame_equal(one, two)


@pytest.mark.parametrize("n_components", ["auto", 3])
def test_same_seed_dp_fits_differ(flchain_small, n_components):
    """DP-EM noise comes from OS entropy (OpenDP), not the seed: two DP fits with one seed
    on one table release different statistics; the ledger says the run is not
    reproducible."""
    from synthdata.privacy import DPConfig
    from synthdata.privacy.noise import REPRODUCIBILITY_NOTE

    schema = Schema.infer(flchain_small)
    fits = [sd.make_generator("gmm", schema, seed=7, privacy=DPConfig(epsilon=3.0),
                              n_components=n_components).fit(flchain_small) for _ in range(2)]
    assert not np.array_equal(fits[0].means_, fits[1].means_)
    assert not fits[0].sample(200, seed=0).equals(fits[1].sample(200, seed=0))
    assert REPRODUCIBILITY_NOTE.rstrip(".") in fits[0].ledger.plain_language()
    em = [e for e in fits[0].ledger.entries if e.step.startswith("model.gmm.dp_em")]
    assert em and all(e.params["sampler"] == "opendp discrete gaussian" for e in em)
    assert all(e.params["opendp_rho"] <= e.rho for e in em)


def test_bad_params_and_rows(flchain_small):
    schema = Schema.infer(flchain_small)
    with pytest.raises(ConfigError, match="max_iter"):
        sd.make_generator("gmm", schema, max_iter=0).fit(flchain_small)
    with pytest.raises(ConfigError, match="unknown parameter"):
        sd.make_generator("gmm", schema, epochs=3)
    gen = sd.make_generator("gmm", schema, n_components=2).fit(flchain_small)
    for bad in (0, -5, 2.5):
        with pytest.raises(ConfigError, match="positive integer"):
            gen.sample(bad)
    with pytest.raises(DataError, match="at least 10"):
        sd.make_generator("gmm", schema).fit(flchain_small.head(3))


def test_edge_columns_constant_all_null_single_category():
    n = 120
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=n), "const": 3.5, "empty": [np.nan] * n,
                       "one": ["only"] * n, "k": rng.choice(["a", "b"], size=n)})
    schema = Schema.infer(df)
    out = sd.make_generator("gmm", schema).fit(df).sample(50, seed=0)
    assert (out["const"] == 3.5).all()
    assert out["empty"].isna().all()
    assert (out["one"] == "only").all()


def test_large_tables_choose_k_on_a_subsample(monkeypatch):
    import synthdata.models.gmm as gmm_module

    rng = np.random.default_rng(0)
    centres = np.array([[-4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, -4.0]])
    x = centres[rng.integers(0, 4, 3000)] + rng.normal(0, 0.5, (3000, 2))
    df = pd.DataFrame(x, columns=["a", "b"])
    schema = Schema.infer(df)
    full = sd.make_generator("gmm", schema, seed=0).fit(df)
    monkeypatch.setattr(gmm_module, "BIC_ROWS", 600)        # 3000 rows now count as large
    sub = sd.make_generator("gmm", schema, seed=0).fit(df)
    assert sub.n_components_ == full.n_components_
    assert abs(sub.loglik_ - full.loglik_) < 0.05             # same optimum reached on all rows


def test_dp_fit_on_the_drafted_declared_schema_outputs_the_declared_grid(flchain_small):
    """Declared precision and sign shape the DP output (post-processing, no budget): every
    continuous value on its declared decimals, never negative where min 0 is declared;
    without declarations the output stays full precision."""
    from synthdata.privacy import DPConfig
    from synthdata.schema.public import declared_dict, declared_schema, draft_declared_schema

    df = flchain_small.drop(columns=["futime", "chapter"], errors="ignore")
    schema = declared_schema(declared_dict(draft_declared_schema(df)), list(df.columns),
                             name="t")
    synth = sd.make_generator("gmm", schema, seed=0, privacy=DPConfig(epsilon=3.0)) \
        .fit(df).sample(400, seed=0)
    for col in schema.columns:
        if col.kind.value == "continuous" and col.precision is not None:
            v = synth[col.name].dropna().to_numpy()
            assert np.allclose(v, np.round(v, col.precision), atol=1e-9), col.name
        if col.min == 0 and col.public:
            assert (synth[col.name].dropna() >= 0).all(), col.name
    undeclared = sd.make_generator("gmm", Schema.infer(df), seed=0,
                                   privacy=DPConfig(epsilon=3.0)).fit(df).sample(400, seed=0)
    kappa = undeclared["kappa"].to_numpy()
    assert not np.allclose(kappa, np.round(kappa, 3))


def test_coded_sampling_matches_the_one_hot_matrix(fitted):
    # sample() builds rows from codes; the one-hot matrix of the same draw gives the same rows
    _, _, gen = fitted
    frame = gen._sample_frame(2000, np.random.default_rng(5), None)
    matrix = gen._sample_matrix(2000, np.random.default_rng(5), None)
    pd.testing.assert_frame_equal(frame, gen.transformer_.inverse_transform(matrix))


def test_fused_em_pass_equals_per_component_statistics():
    # the quadratic-feature E-step: same log-likelihood and moments as the direct formulas
    from synthdata.models import gmm as g

    rng = np.random.default_rng(0)
    x, onehot = rng.normal(size=(5000, 4)), np.eye(3)[rng.integers(0, 3, 5000)]
    k = 3
    a = rng.normal(size=(k, 4, 4))
    fit = {"weights": np.array([0.2, 0.3, 0.5]), "means": rng.normal(size=(k, 4)),
           "covs": a @ np.transpose(a, (0, 2, 1)) + np.eye(4),
           "log_theta": np.log(rng.dirichlet(np.ones(3), size=k))}
    stats = g._Rows(x, onehot).e_step(fit)
    log_p = np.log(fit["weights"]) + g._gaussian_logpdf(x, fit["means"], fit["covs"]) \
        + onehot @ fit["log_theta"].T
    top = log_p.max(axis=1, keepdims=True)
    resp = np.exp(log_p - top)
    norm = resp.sum(axis=1, keepdims=True)
    resp /= norm
    np.testing.assert_allclose(stats["loglik"], (np.log(norm) + top).sum(), rtol=1e-10)
    np.testing.assert_allclose(stats["nk"], resp.sum(axis=0), rtol=1e-10)
    np.testing.assert_allclose(stats["sums"], resp.T @ x, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stats["second"], np.einsum("nk,ni,nj->kij", resp, x, x),
                               rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stats["counts"], resp.T @ onehot, rtol=1e-9, atol=1e-9)


def test_sample_does_not_depend_on_threads_and_blocks_differ(fitted, monkeypatch):
    # rows come in independently seeded blocks of fixed size: 1, 2 or 3 threads give the
    # same frame (small blocks so that 5,000 rows make eight of them)
    from synthdata.models import gmm

    _, _, gen = fitted
    monkeypatch.setattr(gmm, "SAMPLE_BLOCK_ROWS", 700)
    monkeypatch.setattr(gmm, "resolve_threads", lambda threads: threads or 1)  # even on 1 core
    frames = []
    try:
        for threads in (1, 2, 3):
            gen.threads = threads
            frames.append(gen.sample(5000, seed=7))
    finally:
        gen.threads = None
    pd.testing.assert_frame_equal(frames[0], frames[1])
    pd.testing.assert_frame_equal(frames[0], frames[2])
    first, second = (frames[0].iloc[i:i + 700].reset_index(drop=True) for i in (0, 700))
    assert not first.equals(second)
    assert not frames[0].equals(gen.sample(5000, seed=8))


@given(n=st.integers(0, 400_000))
@settings(max_examples=60, deadline=None)
def test_sampling_blocks_are_even_in_number_and_size_and_cover_the_rows(n):
    from synthdata.models import gmm

    starts = gmm._block_starts(n)
    sizes = np.diff(starts)
    assert starts[0] == 0 and starts[-1] == n and (sizes >= 0).all()
    assert sizes.max() <= gmm.SAMPLE_BLOCK_ROWS
    assert sizes.max() - sizes.min() <= 1  # two threads get equal work
    assert len(sizes) == 1 or len(sizes) % 2 == 0
    assert len(sizes) <= max(1, -(-n // gmm.SAMPLE_BLOCK_ROWS)) + 1


def test_block_sampler_draws_the_mixture(fitted):
    # against the textbook draw (components by rng.choice, float64 multivariate normals,
    # categories by inverse CDF): the same scores, correlations and category frequencies,
    # and rows in random order (the first rows of a block are no different from the rest)
    from scipy.stats import ks_2samp

    _, _, gen = fitted
    n = 60_000
    rng = np.random.default_rng(11)
    comp = rng.choice(gen.n_components_, size=n, p=gen.weights_)
    d = gen.means_.shape[1]
    scores = np.empty((n, d))
    for k in range(gen.n_components_):
        at = comp == k
        scores[at] = rng.multivariate_normal(gen.means_[k], gen.covariances_[k], size=at.sum())
    cont, disc = gen._split_layout()
    fast = gen._sample_coded(n, np.random.default_rng(12), None)
    kinds = [s.kind.value for s in gen.transformer_.layout_]
    cont_at = [i for i, kind in enumerate(kinds) if kind != "softmax"]
    disc_at = [i for i, kind in enumerate(kinds) if kind == "softmax"]
    for j, at in enumerate(cont_at):
        assert ks_2samp(fast[:, at], scores[:, j]).statistic < 0.015, at
    assert ks_2samp(fast[:2000, cont_at[0]], scores[:, 0]).pvalue > 1e-4
    assert np.abs(np.corrcoef(fast[:, cont_at].T) - np.corrcoef(scores.T)).max() < 0.03
    theta, pos = np.exp(gen.log_theta_), 0
    assert disc_at, "the fixture should have one-hot spans"
    for (_, width), at in zip(disc, disc_at, strict=True):
        expect = gen.weights_ @ theta[:, pos:pos + width]
        got = np.bincount(fast[:, at].astype(int), minlength=width) / n
        assert np.abs(got - expect).max() < 4 * np.sqrt(expect.max() / n) + 1e-3
        pos += width


@settings(max_examples=60, deadline=None)
@given(weights=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40).filter(lambda v: sum(v) > 0))
def test_alias_table_gives_each_outcome_its_probability(weights):
    from synthdata.models.gmm import _alias_table

    p = np.asarray(weights) / sum(weights)
    prob, alias = _alias_table(p)
    width = len(p)
    got = prob / width
    np.add.at(got, alias, (1 - prob) / width)
    np.testing.assert_allclose(got, p, atol=1e-12)


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 9])
def test_category_draws_follow_each_components_distribution(fitted, width):
    # inverse CDF (narrow spans) and alias tables (wide ones) alike: per component, the
    # drawn frequencies match its probabilities (zero-probability categories never drawn)
    from scipy.stats import chisquare

    from synthdata.models import gmm

    _, _, gen = fitted
    rng = np.random.default_rng(width)
    theta = rng.dirichlet(np.ones(width), size=3)
    never = [0, width - 1] if width > 2 else [0] if width == 2 else []
    theta[1, never] = 0.0  # categories component 1 never has: the first and the last
    theta[1] /= theta[1].sum()
    stub = gmm.GMMGenerator(gen.schema)
    stub.log_theta_ = np.log(np.maximum(theta, 1e-300))
    stub._split_layout = lambda: ([], [(0, width)])
    (table,) = stub._category_tables()
    assert len(table) == (1 if width <= gmm.CUMULATIVE_WIDTH else 2)
    comp = np.repeat(np.arange(3), 40_000)
    rng.shuffle(comp)
    codes = gmm._draw_categories(table, width, comp, np.random.default_rng(0))
    assert codes.min() >= 0 and codes.max() < width
    for k in range(3):
        counts = np.bincount(codes[comp == k], minlength=width)
        if k == 1:
            assert (counts[never] == 0).all()
        live = theta[k] > 0
        if live.sum() > 1:
            assert chisquare(counts[live], 40_000 * theta[k][live]).pvalue > 1e-4
