"""nafld history baseline on a 3,000-patient subset (the full run did not finish under load):
relational gmm, 70/30 split, evaluate_histories. Run: PYTHONPATH=. python benchmarks/history_nafld_subset.py
(reads ../shared/datasets at /work/wt/shared/datasets; writes /tmp/nafld_small.json)."""
import json
import time

import numpy as np
import pandas as pd

from synthdata.evaluate.history import evaluate_histories
from synthdata.pipeline.multitable import split_by_root
from synthdata.relational.schema import MultiTableSchema
from synthdata.relational.synthesizer import RelationalSynthesizer

d = "/work/wt/shared/datasets/"
t = {k: pd.read_csv(d + k + ".csv") for k in ("nafld1", "nafld2", "nafld3")}
ids = set(np.random.default_rng(0).choice(t["nafld1"]["id"], 3000, replace=False).tolist())
t = {"nafld1": t["nafld1"][t["nafld1"]["id"].isin(ids)], "nafld2": t["nafld2"][t["nafld2"]["id"].isin(ids)],
     "nafld3": t["nafld3"][t["nafld3"]["id"].isin(ids)]}
ms = MultiTableSchema.load("schemas/nafld.yaml")
clean, fixes = ms.apply_real_violation_policy(t)
train, hold = split_by_root(clean, ms, 0.3, 0)
t0 = time.process_time()
m = RelationalSynthesizer(ms, seed=0).fit(train)
out = m.sample(seed=0)
fit_cpu = time.process_time() - t0
ev = evaluate_histories(train, out, ms, holdout=hold, target="status", exclude=["futime"],
                        discovered=m.discovered_, discovered_links=m.discovered_links_)
res = {"patients": 3000, "real_policy": fixes, "fit_sample_cpu_s": fit_cpu,
       "eval_cpu_s": time.process_time() - t0 - fit_cpu, "metrics": ev["metrics"],
       "violations": m.violations_, "repairs": m.fixes_,
       "rules": {k: v["rules"] for k, v in ev["tables"].items()},
       "top_features": {k: v["detection"].get("top_features", [])[:4] for k, v in ev["tables"].items()}}
json.dump(res, open("/tmp/nafld_small.json", "w"), indent=1, default=str)
print(json.dumps(res, default=str))
