"""Bounded load test of `synthdata serve` on this machine (loopback only).

Starts a server on 127.0.0.1 with a fresh data folder, uploads data/flchain.csv, starts a
training job (CTGAN, 300 epochs: it trains through the whole window; ``--train gmm`` for
the lighter GMM job of the first version, which may finish early), then runs CLIENTS
concurrent clients for DURATION seconds (at most 60): each polls its job's status
(GET /v1/jobs/{id}) with a short think time, and every few polls lists jobs or submits a
job (which queues behind the tenant limit and is cancelled at the end). Prints
p50/p90/p99/max latency of the status polls, request counts, errors and 5xx, whether the
training job ran during the whole window, the load average before and after, and the CPU
the server, the job worker(s) and this client used.

Each client is one keep-alive HTTP/1.1 connection driven by a small stream client
(``--client raw``), so the latency measured is the server's plus the loopback's; with
``--client httpx`` (the first version's client) one event loop runs 20 httpx clients, and
their own CPU backlog adds to every latency (on 2 cores, this client used more CPU than
the server it measured).

    .venv/bin/python benchmarks/bench_service.py --duration 60 --clients 20
    .venv/bin/python benchmarks/bench_service.py --throughput 1,2 --jobs 4   # jobs/hour

The server runs with the per-tenant rate limit and jobs/hour quota lifted (one tenant
makes all the load here).
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
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
MAX_DURATION_S = 60.0
TRAIN = {"ctgan": {"generator": {"kind": "ctgan", "params": {"epochs": 300}},
                   "evaluate": {"full": False}, "deid": {"unmarked": "transform"}},
         "gmm": {"generator": {"kind": "gmm", "params": {"n_components": 8, "max_iter": 300}},
                 "evaluate": {"full": False}, "deid": {"unmarked": "transform"}}}
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


class RawClient:
    """One keep-alive HTTP/1.1 connection on asyncio streams: a request costs this client
    a few tens of microseconds, not a client library's millisecond."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {token}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n".encode() + self.auth
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            head += (f"Content-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\n").encode()
        try:
            self.writer.write(head + b"\r\n" + data)
            status_line = await self.reader.readuntil(b"\r\n")
            status = int(status_line.split()[1])
            length, chunked, close = 0, False, False
            while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.decode("latin-1").partition(":")
                name, value = name.strip().lower(), value.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "transfer-encoding" and "chunked" in value:
                    chunked = True
                elif name == "connection" and value == "close":
                    close = True
            if chunked:
                payload = b""
                while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    payload += (await self.reader.readexactly(size + 2))[:-2]
                await self.reader.readuntil(b"\r\n")
            else:
                payload = await self.reader.readexactly(length)
        except BaseException:
            await self.close()
            raise
        if close:
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


class HttpxClient:
    """The first version's client: one shared ``httpx.AsyncClient`` for all clients."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        resp = await self.http.request(method, path, json=body)
        return resp.status_code, resp.content

    async def close(self) -> None:
        pass


async def _client(i: int, conn: Any, job_id: str, dataset: str, stop_at: float,
                  think_s: float, out: dict) -> None:
    n = 0
    while time.monotonic() < stop_at:
        n += 1
        try:
            if n % 25 == 0 and i % 5 == 0:
                t0 = time.perf_counter()
                code, body = await conn.request("POST", "/v1/jobs",
                                                {"dataset": dataset, "pipeline": TINY})
                out["other_ms"].append((time.perf_counter() - t0) * 1000)
                if code == 202:
                    out["submitted"].append(json.loads(body)["id"])
            elif n % 10 == 0:
                t0 = time.perf_counter()
                code, body = await conn.request("GET", "/v1/jobs?limit=20")
                out["other_ms"].append((time.perf_counter() - t0) * 1000)
            else:
                t0 = time.perf_counter()
                code, body = await conn.request("GET", f"/v1/jobs/{job_id}")
                out["poll_ms"].append((time.perf_counter() - t0) * 1000)
                if code == 200:
                    out["statuses"].add(json.loads(body)["status"])
            out["requests"] += 1
            if code >= 500:
                out["5xx"] += 1
            if code >= 400 and code != 429:
                out["errors"] += 1
        except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, ValueError) as err:
            out["errors"] += 1
            out["exceptions"].append(type(err).__name__)
        await asyncio.sleep(think_s)
    await conn.close()


async def _load(host: str, port: int, token: str, job_id: str, dataset: str, clients: int,
                duration: float, think_s: float, kind: str) -> dict:
    out = {"poll_ms": [], "other_ms": [], "requests": 0, "errors": 0, "5xx": 0,
           "exceptions": [], "statuses": set(), "submitted": []}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10, limits=limits,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        conns = [RawClient(host, port, token) if kind == "raw" else HttpxClient(http)
                 for _ in range(clients)]
        stop_at = time.monotonic() + duration
        await asyncio.gather(*(_client(i, conns[i], job_id, dataset, stop_at, think_s, out)
                               for i in range(clients)))
    return out


def _children_cpu(proc: psutil.Process) -> dict[int, float]:
    """CPU seconds (user + system) of each live child process (the job workers)."""
    out = {}
    for p in proc.children(recursive=True):
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


class _Uploader:
    """Uploads data/flchain.csv back to back in a thread until ``stop()``."""

    def __init__(self, base: str, token: str) -> None:
        import threading

        self.codes: dict[int, int] = {}
        self._stop = threading.Event()
        self._client = httpx.Client(base_url=base, timeout=120,
                                    headers={"Authorization": f"Bearer {token}"})
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        payload = (ROOT / "data" / "flchain.csv").read_bytes()
        for _ in range(200):  # bounded
            if self._stop.is_set():
                return
            code = self._client.post("/v1/datasets",
                                     files={"file": ("flchain.csv", payload)}).status_code
            self.codes[code] = self.codes.get(code, 0) + 1

    def stop(self) -> dict[int, int]:
        self._stop.set()
        self._thread.join(timeout=120)
        self._client.close()
        return self.codes


THROUGHPUT_JOB = {"generator": {"kind": "gmm", "params": {"n_components": 4, "max_iter": 50}},
                  "sample": {"rows": 2000}, "evaluate": {"full": False},
                  "deid": {"unmarked": "transform"}}


def wait_healthy(client: httpx.Client, server: subprocess.Popen, timeout_s: float = 60) -> None:
    """Poll /healthz until the server answers 200; SystemExit if it dies or takes too long."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.2)


def _serve(host: str, port: int, data_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "synthdata.cli", "serve", "--host", host, "--port", str(port),
         "--data-dir", str(data_dir), "--limit", "rate_per_second=100000", "--limit",
         "rate_burst=100000", "--limit", "quota_jobs_per_hour=100000", *extra], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})


def throughput(host: str, workers: int, n_jobs: int, threads: int | None) -> dict[str, Any]:
    """Jobs/hour of ``n_jobs`` identical GMM jobs (flchain) with ``workers`` workers, each
    with its thread budget (``cores // workers`` unless ``threads``)."""
    port = _free_port(host)
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        data_dir = Path(tmp) / "data"
        token = subprocess.run(
            [sys.executable, "-m", "synthdata.cli", "tokens", "create", "--tenant", "bench",
             "--data-dir", str(data_dir)], cwd=ROOT, capture_output=True, text=True,
            check=True).stdout.strip().splitlines()[-1]
        extra = ["--workers", str(workers), "--tenant-jobs", str(workers)]
        if threads is not None:
            extra += ["--limit", f"worker_threads={threads}"]
        server = _serve(host, port, data_dir, *extra)
        try:
            c = httpx.Client(base_url=f"http://{host}:{port}", timeout=60,
                             headers={"Authorization": f"Bearer {token}"})
            wait_healthy(c, server)
            with open(ROOT / "data" / "flchain.csv", "rb") as fh:
                ds = c.post("/v1/datasets", files={"file": ("flchain.csv", fh)}).json()["id"]
            share = c.get("/v1/limits").json()["limits"]["threads_per_worker"]
            t0 = time.monotonic()
            ids = [c.post("/v1/jobs", json={"dataset": ds, "pipeline": THROUGHPUT_JOB}).json()["id"]
                   for _ in range(n_jobs)]
            statuses: dict[str, str] = {}
            errors: list[str] = []
            while len(statuses) < n_jobs and time.monotonic() - t0 < 900:
                for job in ids:
                    if job not in statuses:
                        body = c.get(f"/v1/jobs/{job}").json()
                        if body["status"] not in ("queued", "running"):
                            statuses[job] = body["status"]
                            if body["error"]:
                                errors.append(body["error"][:200])
                time.sleep(0.5)
            elapsed = time.monotonic() - t0
            c.close()
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    done = sum(st in ("succeeded", "rejected") for st in statuses.values())
    return {"workers": workers, "threads_per_worker": share, "jobs": n_jobs,
            "finished": done, "statuses": sorted(statuses.values()), "errors": errors,
            "elapsed_s": round(elapsed, 1), "jobs_per_hour": round(done / elapsed * 3600, 1),
            "loadavg": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--throughput", help="instead of the poll load: jobs/hour for these "
                                         "worker counts, e.g. 1,2")
    ap.add_argument("--jobs", type=int, default=4, help="jobs per throughput run (max 20)")
    ap.add_argument("--threads", type=int, help="threads per worker (default cores // workers)")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of load (max 60)")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--think-ms", type=float, default=100.0, help="pause between a client's calls")
    ap.add_argument("--host", default="127.0.0.1", help="loopback address to bind and target")
    ap.add_argument("--train", choices=sorted(TRAIN), default="ctgan",
                    help="the training job that runs during the load")
    ap.add_argument("--client", choices=["raw", "httpx"], default="raw",
                    help="raw: one lean keep-alive connection per client; httpx: one shared "
                         "httpx.AsyncClient (the first version's)")
    ap.add_argument("--upload-during", action="store_true",
                    help="also upload data/flchain.csv back to back during the window")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    host = _loopback(args.host)
    if args.throughput:
        rows = [throughput(host, int(w), min(max(args.jobs, 1), 20), args.threads)
                for w in args.throughput.split(",")]
        print(json.dumps(rows, indent=2))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
        return 0
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
        server = _serve(host, port, data_dir, "--workers", "1")
        try:
            sync = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                                timeout=30)
            wait_healthy(sync, server)
            with open(ROOT / "data" / "flchain.csv", "rb") as fh:
                dataset = sync.post("/v1/datasets", files={"file": ("flchain.csv", fh)}).json()["id"]
            job_id = sync.post("/v1/jobs", json={"dataset": dataset,
                                                 "pipeline": TRAIN[args.train]}).json()["id"]
            deadline = time.monotonic() + 120
            while sync.get(f"/v1/jobs/{job_id}").json()["step"] in (None, "starting"):
                if time.monotonic() > deadline:  # the worker's imports are done by then
                    break
                time.sleep(0.2)
            before = sync.get(f"/v1/jobs/{job_id}").json()
            srv, me = psutil.Process(server.pid), psutil.Process()
            load_before = os.getloadavg()
            cpu0 = (sum(srv.cpu_times()[:2]), _children_cpu(srv), sum(me.cpu_times()[:2]))
            uploads = _Uploader(base, token) if args.upload_during else None
            out = asyncio.run(_load(host, port, token, job_id, dataset, clients, duration,
                                    args.think_ms / 1000, args.client))
            upload_codes = uploads.stop() if uploads is not None else None
            cpu1 = (sum(srv.cpu_times()[:2]), _children_cpu(srv), sum(me.cpu_times()[:2]))
            load_after = os.getloadavg()
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
    workers_s = sum(t - cpu0[1].get(pid, 0.0) for pid, t in cpu1[1].items())
    result = {
        "clients": clients, "duration_s": duration, "think_ms": args.think_ms,
        "client": args.client, "train": args.train,
        "requests": out["requests"], "rps": round(out["requests"] / duration, 1),
        "status_polls": len(polls),
        "poll_p50_ms": round(_pct(polls, 0.50), 2), "poll_p90_ms": round(_pct(polls, 0.90), 2),
        "poll_p99_ms": round(_pct(polls, 0.99), 2), "poll_max_ms": round(max(polls), 2),
        "poll_mean_ms": round(statistics.fmean(polls), 2),
        "other_p99_ms": round(_pct(out["other_ms"], 0.99), 2),
        "errors": out["errors"], "server_errors_5xx": out["5xx"],
        "uploads_during": upload_codes,
        "exceptions": sorted(set(out["exceptions"])), "jobs_submitted": len(out["submitted"]),
        "training_job": {"before": [before["status"], round(before["progress"], 3)],
                         "after": [after["status"], round(after["progress"], 3)],
                         "running_throughout": after["status"] == "running"},
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        # CPU used in the window, in cores (1.0 = one core busy throughout); "workers":
        # the job processes alive at its end (a worker that ended inside it is missed)
        "cpu_cores": {"server": round((cpu1[0] - cpu0[0]) / duration, 2),
                      "workers": round(workers_s / duration, 2),
                      "client": round((cpu1[2] - cpu0[2]) / duration, 2)},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if out["5xx"] == 0 and out["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
