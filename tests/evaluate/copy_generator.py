"""A "generator" that returns the training rows: what a gate must refuse."""


class CopyGenerator:
    name = "copy"

    def __init__(self, schema, *, seed=0, privacy=None, **params):
        self.schema, self.seed, self.privacy = schema, seed, privacy

    def fit(self, data, *, ledger=None, progress=None):
        self.rows_ = data.reset_index(drop=True)
        return self

    def sample(self, n, *, conditions=None, seed=None):
        return self.rows_.sample(n, replace=n > len(self.rows_), random_state=0).reset_index(drop=True)
