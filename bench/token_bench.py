"""Benchmark: GET /v2/token for a returning user, beside the same server's cheapest endpoints.

Run from the repository root:

    .venv/bin/python bench/token_bench.py            # gthread:2x4 and sync:2, ~90 s
    .venv/bin/python bench/token_bench.py --models sync:2 --duration 5

Needs `wrk` (HTTP load generator, `apt-get install -y wrk`); the script checks and stops if it is
missing. Everything runs on this machine: a temporary data dir (SQLite), one user `alice` with a
scrypt password (FAB's production default, not a fast test hash), gunicorn serving
`run:create_app()`, and wrk at concurrency 16 with 2 threads.

For each worker model it measures, in the same server run and in this order:
  - floor, static: GET /static/appbuilder/css/ab.css (FAB's static file, 200)
  - floor, 400:    GET /v2/token?scope=bad (rejected before any credential or database work)
  - token:         GET /v2/token?service=SERVICE&scope=repository:alice/app:pull,push with
                   Basic credentials, after a warm-up so every worker has the password cached
                   (PORTUS_CREDENTIAL_CACHE_TTL; the cache is per worker process)
The floor is the faster of the two floor endpoints. Target: tokens/s >= half the floor and
>= 500/s. Results: a table on stdout and bench/results/token_bench.md.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "token_bench.md"
SERVICE = "registry.bench:5000"
USER, PASSWORD = "alice", "alice-bench-password"
SCOPE = "repository:alice/app:pull,push"
CONNECTIONS = 16
WRK_THREADS = 2
# name -> (gunicorn --worker-class, --workers, --threads)
MODELS = {
    "sync:2": ("sync", 2, 1),
    "sync:4": ("sync", 4, 1),
    "gthread:2x4": ("gthread", 2, 4),
}
DEFAULT_MODELS = "gthread:2x4,sync:2"


@dataclass
class WrkResult:
    label: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def machine_facts() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    gunicorn = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "--version"], capture_output=True, text=True
    )
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "cpu": f"{cpu} x {os.cpu_count()}",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "gunicorn": gunicorn.stdout.strip() or gunicorn.stderr.strip(),
        "wrk": (wrk.stdout + wrk.stderr).split("[")[0].strip(),
        "load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def seed(data_dir: Path) -> None:
    """Create the app's tables and alice (scrypt password, personal namespace `alice`)."""
    sys.path.insert(0, str(ROOT))
    from run import create_app

    app = create_app()
    with app.app_context():
        assert app.config["SQLALCHEMY_DATABASE_URI"].endswith(f"{data_dir}/portus.db")
        sm = app.appbuilder.sm
        user = sm.add_user(
            USER, "Alice", "Bench", "alice@bench.test", sm.find_role("User"), PASSWORD
        )
        assert user, "could not create alice"
        assert user.password.startswith("scrypt:"), user.password[:20]
        app.appbuilder.session.remove()


class Gunicorn:
    def __init__(self, data_dir: Path, worker_class: str, workers: int, threads: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / f"gunicorn-{worker_class}-{workers}x{threads}.log"
        self.args = [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--worker-class",
            worker_class,
            "--threads",
            str(threads),
            "--backlog",
            "256",
            "--log-level",
            "warning",
            "run:create_app()",
        ]
        self.popen: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gunicorn:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if http_status(f"{self.base}/v2/token?scope=bad")[0] == 400:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"gunicorn not ready:\n{self.log_path.read_text()[-3000:]}")

    def __exit__(self, *_exc: object) -> None:
        popen, self.popen = self.popen, None
        if popen is None:
            return
        os.killpg(popen.pid, signal.SIGTERM)  # the group this script started, nothing else
        try:
            popen.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match[1]) * _UNIT_MS[match[2]]


def wrk(label: str, url: str, seconds: float, headers: dict[str, str] | None = None) -> WrkResult:
    args = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
    ]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.M))
    errors = re.search(r"Socket errors: (.*)", out)
    return WrkResult(
        label=label,
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        requests=int(re.search(r"(\d+) requests in", out)[1]),
        non_2xx=int(m[1]) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0,
        socket_errors=errors[1] if errors else "none",
    )


def check_token(base: str, auth: dict[str, str]) -> None:
    status, body = http_status(f"{base}/v2/token?service={SERVICE}&scope={SCOPE}", auth)
    assert status == 200, (status, body[:300])
    token = json.loads(body)["token"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    access = claims["access"]
    assert access == [
        {"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}
    ] or sorted(access[0]["actions"]) == ["pull", "push"], access
    assert http_status(f"{base}/v2/token?scope=bad")[0] == 400
    assert http_status(f"{base}/static/appbuilder/css/ab.css")[0] == 200


def run_model(
    name: str, data_dir: Path, seconds: float, warmup: float
) -> tuple[str, list[WrkResult]]:
    worker_class, workers, threads = MODELS[name]
    auth = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    token_url = f"/v2/token?service={SERVICE}&scope={SCOPE}"
    with Gunicorn(data_dir, worker_class, workers, threads) as server:
        check_token(server.base, auth)
        results = []
        wrk("warm-up", f"{server.base}/static/appbuilder/css/ab.css", warmup)
        results.append(
            wrk("floor: static ab.css", f"{server.base}/static/appbuilder/css/ab.css", seconds)
        )
        results.append(wrk("floor: 400 bad scope", f"{server.base}/v2/token?scope=bad", seconds))
        # Every worker process verifies the scrypt password once, then serves it from its cache.
        wrk("warm-up", f"{server.base}{token_url}", warmup, auth)
        results.append(wrk("token (returning user)", f"{server.base}{token_url}", seconds, auth))
    return name, results


def report(facts: dict[str, str], runs: list[tuple[str, list[WrkResult]]], seconds: float) -> str:
    lines = [
        "# token_bench: GET /v2/token vs the floor",
        "",
        f"Produced by `.venv/bin/python bench/token_bench.py` on {facts['date']}.",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in facts.items()],
        "",
        f"Load: wrk, {WRK_THREADS} threads, {CONNECTIONS} connections, {seconds:g} s per row, "
        "on the same 2 cores as the server. Password hash: scrypt (FAB default). "
        f"Scope `{SCOPE}`, service `{SERVICE}`. "
        f"Signing: {os.environ['PORTUS_TOKEN_ALGORITHM']} (PORTUS_TOKEN_ALGORITHM).",
        "",
        "| worker model | endpoint | req/s | p50 ms | p99 ms | requests | non-2xx "
        "| socket errors |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    verdicts = []
    for name, results in runs:
        for r in results:
            lines.append(
                f"| {name} | {r.label} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
                f"| {r.requests:,} | {r.non_2xx:,} | {r.socket_errors} |"
            )
        floor = max(results[0].rps, results[1].rps)
        token = results[2].rps
        ok = token >= floor / 2 and token >= 500
        verdicts.append(
            f"- {name}: tokens/s {token:,.0f} = {token / floor:.0%} of floor {floor:,.0f} "
            f"(target >= 50% and >= 500/s): **{'PASS' if ok else 'FAIL'}**"
        )
    lines += ["", "Floor = the faster of the two floor rows of the same server run.", ""]
    lines += verdicts
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"of {', '.join(MODELS)}")
    parser.add_argument("--duration", type=float, default=8, help="seconds per measured row")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up")
    parser.add_argument(
        "--algorithm", default="RS256", choices=["RS256", "ES256"], help="token signing key"
    )
    args = parser.parse_args()
    os.environ["PORTUS_TOKEN_ALGORITHM"] = args.algorithm
    results = (
        RESULTS
        if args.algorithm == "RS256"
        else RESULTS.with_name(f"token_bench_{args.algorithm.lower()}.md")
    )
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {list(MODELS)}")

    with tempfile.TemporaryDirectory(prefix="portus-token-bench-") as tmp:
        data_dir = Path(tmp)
        os.environ.update(
            {
                "PORTUS_DATA_DIR": str(data_dir),
                "PORTUS_REGISTRY_URL": f"http://{SERVICE}",
                "PORTUS_REGISTRY_SERVICE": SERVICE,
                "PORTUS_BROKER_URL": "memory://",
                "PORTUS_EMBEDDED_WORKER": "false",
            }
        )
        for name in ("PORTUS_DATABASE_URL", "PORTUS_CREDENTIAL_CACHE_TTL"):  # defaults: 60 s
            os.environ.pop(name, None)
        seed(data_dir)
        facts = machine_facts()
        runs = []
        for name in models:
            print(f"== {name}", flush=True)
            runs.append(run_model(name, data_dir, args.duration, args.warmup))
            for r in runs[-1][1]:
                print(
                    f"   {r.label:26} {r.rps:9,.0f} req/s  p50 {r.p50_ms:7.2f}  p99 {r.p99_ms:7.2f}"
                )
    facts["load average at end (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    text = report(facts, runs, args.duration)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(text)
    print()
    print(text)
    print(f"written to {results.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
