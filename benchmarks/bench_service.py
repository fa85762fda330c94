"""Bounded load test of `synthdata serve` on this machine (loopback only).

Starts a server on 127.0.0.1 with a fresh data folder, uploads data/flchain.csv, starts a
training job, then runs CLIENTS concurrent clients for DURATION seconds (at most 60): each
polls its job's status (GET /v1/jobs/{id}) with a short think time, and every few polls
lists jobs or submits a job (which queues behind the tenant limit and is cancelled at the
end). Prints p50/p90/p99/max latency of the status polls, request counts, errors and 5xx,
and whether the training job ran during the whole window. Stops by itself.

    .venv/bin/python benchmarks/bench_service.py --duration 30 --clients 20
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MAX_DURATION_S = 60.0
TRAIN = {"generator": {"kind": "gmm", "params": {"n_components": 8, "max_iter": 300}},
         "evaluate": {"full": False}}
TINY = {"generator": {"kind": "gmm", "params": {"n_components": 2, "max_iter": 10}},
        "sample": {"rows": 100}, "evaluate": {"full": False}}


def _loopback(host: str) -> str:
    if host == "localhost":
        return host
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"refusing to load-test {host}: only loopback addresses are allowed")
    return host


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def _client(i: int, http: httpx.AsyncClient, job_id: str, dataset: str, stop_at: float,
                  think_s: float, out: dict) -> None:
    n = 0
    while time.monotonic() < stop_at:
        n += 1
        try:
            if n % 25 == 0 and i % 5 == 0:
                t0 = time.perf_counter()
                resp = await http.post("/v1/jobs", json={"dataset": dataset, "pipeline": TINY})
                out["other_ms"].append((time.perf_counter() - t0) * 1000)
                if resp.status_code == 202:
                    out["submitted"].append(resp.json()["id"])
            elif n % 10 == 0:
                t0 = time.perf_counter()
                resp = await http.get("/v1/jobs", params={"limit": 20})
                out["other_ms"].append((time.perf_counter() - t0) * 1000)
            else:
                t0 = time.perf_counter()
                resp = await http.get(f"/v1/jobs/{job_id}")
                out["poll_ms"].append((time.perf_counter() - t0) * 1000)
                if resp.status_code == 200:
                    out["statuses"].add(resp.json()["status"])
            out["requests"] += 1
            if resp.status_code >= 500:
                out["5xx"] += 1
            if resp.status_code >= 400 and resp.status_code != 429:
                out["errors"] += 1
        except httpx.HTTPError as err:
            out["errors"] += 1
            out["exceptions"].append(type(err).__name__)
        await asyncio.sleep(think_s)


async def _load(base: str, token: str, job_id: str, dataset: str, clients: int,
                duration: float, think_s: float) -> dict:
    out = {"poll_ms": [], "other_ms": [], "requests": 0, "errors": 0, "5xx": 0,
           "exceptions": [], "statuses": set(), "submitted": []}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                 timeout=10, limits=limits) as http:
        stop_at = time.monotonic() + duration
        await asyncio.gather(*(_client(i, http, job_id, dataset, stop_at, think_s, out)
                               for i in range(clients)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of load (max 60)")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--think-ms", type=float, default=100.0, help="pause between a client's calls")
    ap.add_argument("--host", default="127.0.0.1", help="loopback address to bind and target")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    host = _loopback(args.host)
    duration = min(max(args.duration, 1.0), MAX_DURATION_S)
    clients = min(max(args.clients, 1), 100)
    port = _free_port(host)
    base = f"http://{host}:{port}"

    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        data_dir = Path(tmp) / "data"
        token = subprocess.run(
            [sys.executable, "-m", "synthdata.cli", "tokens", "create", "--tenant", "bench",
             "--data-dir", str(data_dir)], cwd=ROOT, capture_output=True, text=True,
            check=True).stdout.strip().splitlines()[-1]
        server = subprocess.Popen(
            [sys.executable, "-m", "synthdata.cli", "serve", "--host", host, "--port", str(port),
             "--data-dir", str(data_dir), "--workers", "1"], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
        try:
            sync = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                timeout=30)
            deadline = time.monotonic() + 60
            while True:
                try:
                    if sync.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
            with open(ROOT / "data" / "flchain.csv", "rb") as fh:
                dataset = sync.post("/v1/datasets", files={"file": ("flchain.csv", fh)}).json()["id"]
            job_id = sync.post("/v1/jobs", json={"dataset": dataset, "pipeline": TRAIN}).json()["id"]
            while sync.get(f"/v1/jobs/{job_id}").json()["status"] == "queued":
                time.sleep(0.2)
            before = sync.get(f"/v1/jobs/{job_id}").json()
            out = asyncio.run(_load(base, token, job_id, dataset, clients, duration,
                                    args.think_ms / 1000))
            after = sync.get(f"/v1/jobs/{job_id}").json()
            for extra in out["submitted"]:
                sync.post(f"/v1/jobs/{extra}/cancel")
            sync.post(f"/v1/jobs/{job_id}/cancel")
            sync.close()
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()

    polls = out["poll_ms"]
    result = {
        "clients": clients, "duration_s": duration, "think_ms": args.think_ms,
        "requests": out["requests"], "rps": round(out["requests"] / duration, 1),
        "status_polls": len(polls),
        "poll_p50_ms": round(_pct(polls, 0.50), 2), "poll_p90_ms": round(_pct(polls, 0.90), 2),
        "poll_p99_ms": round(_pct(polls, 0.99), 2), "poll_max_ms": round(max(polls), 2),
        "poll_mean_ms": round(statistics.fmean(polls), 2),
        "other_p99_ms": round(_pct(out["other_ms"], 0.99), 2),
        "errors": out["errors"], "server_errors_5xx": out["5xx"],
        "exceptions": sorted(set(out["exceptions"])), "jobs_submitted": len(out["submitted"]),
        "training_job": {"before": [before["status"], round(before["progress"], 3)],
                         "after": [after["status"], round(after["progress"], 3)],
                         "running_throughout": after["status"] == "running"},
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if out["5xx"] == 0 and out["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
