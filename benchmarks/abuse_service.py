"""Abuse test of `synthdata serve` (issue 20), loopback only, bounded loops.

Starts a server on 127.0.0.1 with a fresh data folder (real runner, 2 workers) and tries
every abuse the security review found: oversized and invalid jobs, decompression and body
bombs, deep JSON, formula cells, world-readable files, queue races, request floods,
token revocation and scopes, server paths in responses, runaway jobs. For each it prints
the status codes, whether the expectation held, and the API process's peak RSS (sampled
every 20 ms); at the end the number of jobs that took a worker slot.

    .venv/bin/python benchmarks/abuse_service.py --json benchmarks/results/abuse_service.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import _free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
TINY = {"generator": {"kind": "gmm", "params": {"n_components": 2, "max_iter": 10}},
        "sample": {"rows": 200}, "evaluate": {"full": False}}
LIMITS = ["job_time_limit_s=90", "max_upload_cells=20000000", "max_queued_per_tenant=20",
          "rate_per_second=50", "rate_burst=100"]


class RssSampler:
    """Peak RSS of one process, sampled in a thread; ``window()`` resets the peak."""

    def __init__(self, pid: int) -> None:
        self.proc, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    def window(self) -> float:
        try:
            now = self.proc.memory_info().rss
        except psutil.Error:
            now = 0
        peak, self.peak = max(self.peak, now), 0
        return round(peak / 2**20, 1)

    def stop(self) -> None:
        self._stop.set()


def _cli(data_dir: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "synthdata.cli", *args, "--data-dir",
                          str(data_dir)], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def _upload(c: httpx.Client, name: str, content: bytes) -> httpx.Response:
    return c.post("/v1/datasets", files={"file": (name, content)})


def _formula_csv() -> bytes:
    formulas = ['=HYPERLINK("http://x.invalid")', "+cmd|' /C calc'!A0", "@SUM(A1)", "-1+2"]
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"note": [formulas[i % 4] for i in range(400)],
                       "value": np.round(rng.normal(50, 10, 400), 3)})
    return df.to_csv(index=False).encode()


def _parquet_bomb(rows: int) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"a": pa.array(np.zeros(rows, dtype=np.int8))}), buf,
                   compression="zstd", row_group_size=rows)
    return buf.getvalue()


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    seen_text: list[str] = []

    def record(name: str, codes: Any, ok: bool, rss: RssSampler, **extra: Any) -> None:
        row = {"abuse": name, "status": codes, "held": bool(ok), "api_rss_peak_mb": rss.window(),
               **extra}
        results.append(row)
        print(json.dumps(row), flush=True)

    port = _free_port(HOST)
    with tempfile.TemporaryDirectory(prefix="abuse-service-") as tmp:
        data_dir = Path(tmp) / "data"
        token = _cli(data_dir, "tokens", "create", "--tenant", "abuser")
        other = _cli(data_dir, "tokens", "create", "--tenant", "neighbour")
        analyst = _cli(data_dir, "tokens", "create", "--tenant", "abuser", "--scopes",
                       "read,submit")
        limits = [x for pair in LIMITS for x in ("--limit", pair)]
        server = subprocess.Popen(
            [sys.executable, "-m", "synthdata.cli", "serve", "--host", HOST, "--port",
             str(port), "--data-dir", str(data_dir), "--workers", "2", "--tenant-jobs", "2",
             *limits], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rss = RssSampler(server.pid)
        base = f"http://{HOST}:{port}"
        c = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        try:
            wait_healthy(c, server)
            rss.window()
            _abuses(c, base, token, other, analyst, data_dir, server, rss, record, seen_text)
        finally:
            c.close()
            rss.stop()
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    held = sum(r["held"] for r in results)
    return {"abuses": results, "held": held, "total": len(results),
            "api_rss_peak_mb": max(r["api_rss_peak_mb"] for r in results),
            "cpus": os.cpu_count(), "loadavg": [round(x, 2) for x in os.getloadavg()]}


def _abuses(c, base, token, other, analyst, data_dir, server, rss, record, seen_text) -> None:
    flchain = (ROOT / "data" / "flchain.csv").read_bytes()
    ds = _upload(c, "flchain.csv", flchain).json()["id"]
    rss.window()

    # 1. invalid or oversized jobs: 4xx at submit, nothing queued
    bad = {"sample.rows 1e9": {"sample": {"rows": 10**9}},
           "epochs 1e9": {"generator": {"kind": "ctgan", "params": {"epochs": 10**9}}},
           "unknown param": {"generator": {"kind": "gmm", "params": {"bogus": 1}}},
           "negative seed": {"seed": -1},
           "negative epochs": {"generator": {"kind": "vae", "params": {"epochs": -1}}},
           "gate is a path": {"gate": "/etc/passwd"},
           "data block": {"data": {"path": "/etc/passwd"}},
           "output.dir": {"output": {"dir": "/tmp"}},
           "formulas off": {"output": {"neutralize_formulas": False}}}
    for name, pipeline in bad.items():
        resp = c.post("/v1/jobs", json={"dataset": ds, "pipeline": pipeline})
        seen_text.append(resp.text)
        record(f"job: {name}", resp.status_code, resp.status_code in (413, 422), rss,
               detail=resp.json()["detail"][:160])
    queued = c.get("/v1/jobs").json()["items"]
    record("worker slots spent on invalid jobs", len(queued), len(queued) == 0, rss)

    # 2. decompression and body bombs
    bomb = _parquet_bomb(150_000_000)
    resp = _upload(c, "bomb.parquet", bomb)
    record("parquet declaring 150M rows", resp.status_code, resp.status_code == 413, rss,
           file_mb=round(len(bomb) / 2**20, 2), detail=resp.json()["detail"][:120])
    medium = _parquet_bomb(15_000_000)  # under the cell limit: accepted, schema on a sample
    resp = _upload(c, "fifteen.parquet", medium)
    code2 = c.get(f"/v1/datasets/{resp.json()['id']}/schema").status_code \
        if resp.status_code == 201 else None
    record("15M-row parquet (under the limit) + GET schema", [resp.status_code, code2],
           resp.status_code in (201, 413) and code2 in (None, 200), rss,
           file_mb=round(len(medium) / 2**20, 2))
    csv_bomb = b"a,b,c,d,e,f,g,h,i,j\n" + b"1,2,3,4,5,6,7,8,9,0\n" * 3_000_000  # 30M cells
    resp = _upload(c, "cells.csv", csv_bomb)
    record("CSV over the cell limit (30M cells, 60 MB; limit 20M)", resp.status_code,
           resp.status_code == 413 and "cells" in resp.text, rss,
           detail=resp.json()["detail"][:120])
    big = json.dumps({"dataset": ds, "pipeline": {"name": "x" * (50 * 2**20)}}).encode()
    resp = c.post("/v1/jobs", content=big, headers={"Content-Type": "application/json"})
    record("50 MB JSON body", resp.status_code, resp.status_code == 413, rss)
    deep = "{" + '"a":{' * 500 + "}" * 501
    resp = c.post("/v1/jobs", content=f'{{"dataset": "{ds}", "pipeline": {deep}}}',
                  headers={"Content-Type": "application/json"})
    record("500-deep JSON", resp.status_code, resp.status_code == 422, rss,
           detail=resp.json()["detail"][:120])
    resp = c.post("/v1/jobs", content=b'{"dataset": ', headers={"Content-Type": "application/json"})
    record("malformed JSON", resp.status_code, resp.status_code == 400, rss)

    # 3. formula cells come back neutralised; files are private
    fds = _upload(c, "formulas.csv", _formula_csv()).json()["id"]
    job = c.post("/v1/jobs", json={"dataset": fds, "pipeline": {
        **TINY, "gate": {"exact_copy_excess": {"max": 0.05}}}}).json()["id"]
    status = _wait(c, job, 180)
    synth = c.get(f"/v1/jobs/{job}/synthetic")
    notes = set(pd.read_csv(io.BytesIO(synth.content))["note"]) if synth.status_code == 200 else set()
    record("formula cells in served CSV", [status, synth.status_code],
           synth.status_code == 200 and notes and all(n.startswith("'") for n in notes), rss,
           cells=sorted(notes)[:4], error=c.get(f"/v1/jobs/{job}").json()["error"])
    html = c.get(f"/v1/jobs/{job}/report?format=html")
    seen_text.append(c.get(f"/v1/jobs/{job}/report").text)
    record("HTML report headers", html.status_code,
           "default-src 'none'" in html.headers.get("content-security-policy", "")
           and html.headers.get("x-content-type-options") == "nosniff", rss)
    modes = Counter()
    for p in data_dir.rglob("*"):
        mode = stat.S_IMODE(p.stat().st_mode)
        modes["dir " + oct(mode) if p.is_dir() else "file " + oct(mode)] += 1
    record("file modes under the data folder", dict(modes),
           set(modes) <= {"dir 0o700", "file 0o600"}, rss)
    record("/docs without a CDN (off by default)", c.get("/docs").status_code,
           c.get("/docs").status_code == 404, rss)

    # 4. queue race: 60 concurrent submissions against a queue limit of 20
    def submit(_: int) -> int:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as cc:
            return cc.post("/v1/jobs", json={"dataset": ds, "pipeline": TINY}).status_code

    with ThreadPoolExecutor(12) as pool:
        codes = Counter(pool.map(submit, range(60)))
    jobs = c.get("/v1/jobs?limit=500").json()["items"]
    active = [j for j in jobs if j["status"] in ("queued", "running")]
    record("queue race (limit 20, 60 concurrent)", dict(codes),
           codes[202] <= 20 + 2 and len([j for j in active if j["status"] == "queued"]) <= 20,
           rss, accepted=codes[202])
    for j in active:
        c.post(f"/v1/jobs/{j['id']}/cancel")
    time.sleep(1.1)

    # 5. request flood: 400 requests as fast as possible
    flood = Counter()
    retry = set()
    for _ in range(400):
        r = c.get("/v1/jobs?limit=1")
        flood[r.status_code] += 1
        if r.status_code == 429:
            retry.add(r.headers.get("retry-after"))
    record("request flood (400 back to back)", dict(flood),
           flood[429] > 0 and None not in retry, rss, retry_after=sorted(retry))
    time.sleep(2.5)

    # 6. tokens: scopes and revocation
    a = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {analyst}"}, timeout=30)
    codes6 = [a.post("/v1/jobs", json={"dataset": ds, "pipeline": TINY}).status_code,
              a.get(f"/v1/jobs/{job}/synthetic").status_code,
              a.put(f"/v1/datasets/{ds}/budget",
                    json={"total_epsilon": 1e6, "total_delta": 0.5}).status_code]
    record("read+submit token: submit, download, raise budget", codes6,
           codes6 == [202, 403, 403], rss)
    c.post(f"/v1/jobs/{a.get('/v1/jobs?limit=1').json()['items'][0]['id']}/cancel")
    _cli(data_dir, "tokens", "revoke", analyst.split("_")[1])
    t0 = time.monotonic()
    while a.get("/v1/jobs?limit=1").status_code != 401 and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    record("revocation (CLI, other process)", a.get("/v1/jobs?limit=1").status_code,
           time.monotonic() - t0 <= 1.2, rss, effective_after_s=round(time.monotonic() - t0, 2))
    a.close()
    n = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {other}"}, timeout=30)
    iso = [n.get(f"/v1/datasets/{ds}").status_code, n.get(f"/v1/jobs/{job}/synthetic").status_code,
           n.delete(f"/v1/datasets/{ds}").status_code]
    n.close()
    record("neighbour tenant on our ids", iso, iso == [404, 404, 404], rss)

    # 7. runaway job: the time limit (90 s) kills it
    run = c.post("/v1/jobs", json={"dataset": ds, "pipeline": {
        "generator": {"kind": "ctgan", "params": {"epochs": 2000}}, "evaluate": {"full": False},
        "deid": {"unmarked": "transform"}}})
    status = _wait(c, run.json()["id"], 300) if run.status_code == 202 else None
    err = c.get(f"/v1/jobs/{run.json()['id']}").json()["error"] if status else None
    record("runaway job (ctgan 2000 epochs, limit 90 s)", [run.status_code, status],
           status == "failed" and str(err).startswith("time limit"), rss, error=err)

    # 8. no server paths in anything we got back
    audit = c.get("/v1/audit?limit=1000").json()["items"]
    seen_text.append(json.dumps(audit))
    seen_text.extend(c.get(f"/v1/jobs/{j['id']}").text for j in c.get("/v1/jobs?limit=100").json()["items"])
    leaks = [t[:80] for t in seen_text if str(data_dir) in t or tempfile.gettempdir() + "/" in t]
    record("server paths in responses", len(leaks), not leaks, rss)
    record("audit log entries", dict(Counter(e["action"] for e in audit)), len(audit) > 0, rss)


def _wait(c: httpx.Client, job: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = c.get(f"/v1/jobs/{job}").json()["status"]
        if status not in ("queued", "running"):
            return status
        time.sleep(0.5)
    return "timeout"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    out = run(args)
    print(json.dumps({k: v for k, v in out.items() if k != "abuses"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0 if out["held"] == out["total"] else 1


if __name__ == "__main__":
    sys.exit(main())
