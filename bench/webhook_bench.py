"""Benchmark: registry notification ingestion (POST /v2/webhooks/events) with a real Redis broker.

Run from the repository root:

    .venv/bin/python bench/webhook_bench.py           # ~1 minute
    .venv/bin/python bench/webhook_bench.py --events 2000 --models gthread:2x4

Needs `redis-server` (Debian package redis-server); the script starts its own on a free port with
persistence off and stops it at the end. Storage is SQLite in a temporary data dir (the default;
PostgreSQL is not needed). The server is gunicorn serving `run:create_app()`.

Each phase delivers N (default 5,000) manifest push and pull events the way registry 2.x does:
one envelope at a time per endpoint queue, 1 to 10 events per envelope, each event with a unique
id, `Authorization: Bearer <secret>` and content type
application/vnd.docker.distribution.events.v1+json, on a keep-alive connection. Phases:
  - 1 sender  (the registry's queue is sequential per endpoint), per worker model
  - 4 senders (four registries or endpoints at once), per worker model
Each server first gets 500 unmeasured events (a warm-up). After each phase 5% of its envelopes
are delivered again (a registry retrying after a timeout) and the script checks, in the
database, that every event of the phase is stored exactly once: as many `accepted`
RegistryEventRecord rows as events sent, all ids distinct and present.
The webhook answers once an envelope is stored and the server applies stored events to the
catalog moments later, so a phase's time runs until no event of it is pending any more: events/s
counts applied events, not just answered ones.
It also reports how many enrich tasks reached Redis (the server enqueues, never fetches).
The sender is http.client, not requests, which costs ~3 ms of CPU per POST on these cores.
Target: >= 1,000 events/s and p99 < 20 ms. Results: stdout and bench/results/webhook_bench.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis
import requests

from common import (
    REGISTRY_URL,
    ROOT,
    Gunicorn,
    Redis,
    WorkerModel,
    add_end_load,
    add_models_option,
    add_user,
    create_app,
    machine_facts,
    percentile,
    report_header,
    require_tool,
    selected_models,
    set_portus_env,
    write_report,
)

RESULTS = ROOT / "bench" / "results" / "webhook_bench.md"
SECRET = "bench-webhook-secret"
ENVELOPE_TYPE = "application/vnd.docker.distribution.events.v1+json"
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
TEAMS = [f"team{i}" for i in range(5)]  # known namespaces; adopted ones appear on first push
MODELS: dict[str, WorkerModel] = {
    "gthread:2x4": ("gthread", 2, 4),
    "gthread:1x4": ("gthread", 1, 4),
    "sync:2": ("sync", 2, 1),
}
DEFAULT_MODELS = "gthread:2x4,gthread:1x4"
WARMUP_EVENTS = 500  # per server, before its measured phases


@dataclass
class Phase:
    model: str
    senders: int
    events: int
    envelopes: int
    seconds: float
    latencies_ms: list[float]
    stored: int
    distinct: int
    missing: int
    redelivered_dupes_ok: bool
    applied_after_s: float  # from the last answer until every event was applied
    queued: int = 0  # enrich tasks this phase put in Redis

    @property
    def events_per_s(self) -> float:
        """Counted until every event is applied, not just answered: the stricter figure."""
        return self.events / (self.seconds + self.applied_after_s)

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def exactly_once(self) -> bool:
        return self.stored == self.events == self.distinct and self.missing == 0


def seed(data_dir: Path) -> None:
    """Tables, an admin-less app with a user `alice` and the known team namespaces."""
    # nobody logs in here: a fast hash
    app = create_app(data_dir, {"FAB_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"})
    from portus_fab.access.management import create_namespace

    with app.app_context():
        assert add_user(app, "alice", "Alice", "x")
        session = app.appbuilder.session
        for team in TEAMS:
            create_namespace(session, team)
        session.commit()
        session.remove()


def webhook_ready(base: str) -> bool:
    """Up once the webhook answers an unauthenticated POST with 401 (no event is stored)."""
    return requests.post(f"{base}/v2/webhooks/events", data=b"{}", timeout=2).status_code == 401


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def make_envelopes(rng: random.Random, phase: str, total: int) -> tuple[list[bytes], list[str]]:
    """Envelopes of 1 to 10 events, summing to exactly `total`, ~40% pushes and ~60% pulls."""
    repositories = [f"{ns}/app{j}" for ns in [*TEAMS, "alice", "ext1", "ext2"] for j in range(8)]
    pushed: list[tuple[str, str, str]] = []
    t0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=rng.randint(0, 300))
    envelopes, ids, made = [], [], 0
    while made < total:
        size = min(rng.randint(1, 10), total - made)
        events = []
        for _ in range(size):
            made += 1
            at = (t0 + dt.timedelta(milliseconds=made * 37)).isoformat().replace("+00:00", "Z")
            if not pushed or rng.random() < 0.4:
                repository = rng.choice(repositories)
                tag = rng.choice(["latest", "v1", "v2", f"build-{made}"])
                digest = _digest(f"{phase}-{made}")
                pushed.append((repository, tag, digest))
                action, method = "push", "PUT"
            else:
                repository, tag, digest = rng.choice(pushed)
                action, method = "pull", "GET"
            event_id = f"{phase}-{uuid.UUID(int=rng.getrandbits(128))}"
            ids.append(event_id)
            events.append(
                {
                    "id": event_id,
                    "timestamp": at,
                    "action": action,
                    "target": {
                        "mediaType": rng.choice(MANIFEST_TYPES),
                        "size": 528 + made % 2000,
                        "digest": digest,
                        "length": 528 + made % 2000,
                        "repository": repository,
                        "url": f"{REGISTRY_URL}/v2/{repository}/manifests/{digest}",
                        "tag": tag,
                    },
                    "request": {
                        "id": str(uuid.UUID(int=rng.getrandbits(128))),
                        "addr": f"192.0.2.{made % 250}:5{made % 9999:04d}",
                        "host": "registry.bench:5000",
                        "method": method,
                        "useragent": "docker/27.3.1 go/go1.22.7 os/linux arch/amd64",
                    },
                    "actor": {"name": "alice"},
                    "source": {"addr": "registry:5000", "instanceID": "8d0a4e6c-bench"},
                }
            )
        envelopes.append(json.dumps({"events": events}).encode())
    return envelopes, ids


def deliver(base: str, envelopes: list[bytes], latencies: list[float]) -> list[dict[str, int]]:
    """One sender: envelope after envelope on one keep-alive connection, like the registry's
    per-endpoint queue. http.client, not requests: requests spends about 3 ms of this machine's
    CPU per POST, which the registry (Go) does not, and the sender shares the server's cores."""
    connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=30)
    headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": ENVELOPE_TYPE}
    answers = []
    for body in envelopes:
        start = time.perf_counter()
        connection.request("POST", "/v2/webhooks/events", body=body, headers=headers)
        response = connection.getresponse()
        text = response.read()
        latencies.append((time.perf_counter() - start) * 1000)
        if response.status != 200:
            raise RuntimeError(f"webhook answered {response.status}: {text[:300]!r}")
        answers.append(json.loads(text))
    connection.close()
    return answers


def wait_applied(db: Path, phase: str, deadline_s: float = 120) -> float:
    """Seconds until no event of the phase is pending any more: the webhook answers once it
    has stored an envelope, and each server process applies the stored events moments later."""
    start = time.perf_counter()
    while True:
        with sqlite3.connect(db) as conn:
            pending = conn.execute(
                "SELECT count(*) FROM portus_registry_event WHERE status = 'pending' "
                "AND substr(event_id, 1, ?) = ?",
                (len(phase), phase),
            ).fetchone()[0]
        waited = time.perf_counter() - start
        if not pending:
            return waited
        if waited > deadline_s:
            raise RuntimeError(f"{pending} events of {phase} still pending after {waited:.0f} s")
        time.sleep(0.01)


def check_stored(db: Path, phase: str, ids: list[str]) -> tuple[int, int, int]:
    """(accepted rows of the phase, distinct ids among them, sent ids not stored)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT event_id FROM portus_registry_event WHERE status = 'accepted' "
            "AND substr(event_id, 1, ?) = ?",
            (len(phase) + 1, f"{phase}-"),
        ).fetchall()
        others = conn.execute(
            "SELECT count(*) FROM portus_registry_event WHERE status <> 'accepted' "
            "AND substr(event_id, 1, ?) = ?",
            (len(phase) + 1, f"{phase}-"),
        ).fetchone()[0]
    stored = [r[0] for r in rows]
    if others:
        print(f"   !! {others} events of {phase} were stored as rejected")
    return len(stored), len(set(stored)), len(set(ids) - set(stored))


def run_phase(
    base: str, db: Path, model: str, senders: int, total: int, rng: random.Random
) -> Phase:
    phase = f"{model}/s{senders}/"
    streams = [make_envelopes(rng, f"{phase}{k}", total // senders) for k in range(senders)]
    streams[0] = make_envelopes(rng, f"{phase}0", total - (senders - 1) * (total // senders))
    latencies: list[list[float]] = [[] for _ in streams]
    answers: list[list[dict[str, int]]] = [[] for _ in streams]
    errors: list[BaseException] = []

    def sender(k: int) -> None:
        try:
            answers[k] = deliver(base, streams[k][0], latencies[k])
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(senders)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    applied_after = wait_applied(db, phase)
    accepted = sum(a["accepted"] for stream in answers for a in stream)
    # A registry retrying after a timeout: 5% of the envelopes again; all must be duplicates.
    again = [env for envelopes, _ in streams for env in envelopes[::20]]
    replies = deliver(base, again, [])
    dupes_ok = all(r["accepted"] == 0 and r["duplicates"] > 0 for r in replies)
    ids = [i for _, stream_ids in streams for i in stream_ids]
    stored, distinct, missing = 0, 0, 0
    for k in range(senders):
        s, d, m = check_stored(db, f"{phase}{k}", streams[k][1])
        stored, distinct, missing = stored + s, distinct + d, missing + m
    if accepted != len(ids):
        print(f"   !! responses say {accepted} accepted of {len(ids)} sent")
    return Phase(
        model=model,
        senders=senders,
        events=len(ids),
        envelopes=sum(len(e) for e, _ in streams),
        seconds=seconds,
        latencies_ms=[x for lat in latencies for x in lat],
        stored=stored,
        distinct=distinct,
        missing=missing,
        redelivered_dupes_ok=dupes_ok,
        applied_after_s=applied_after,
    )


def report(facts: dict[str, str], phases: list[Phase], args: argparse.Namespace) -> str:
    lines = [
        *report_header("webhook_bench", "registry events into POST /v2/webhooks/events", facts),
        f"{args.events:,} manifest push/pull events per phase in envelopes of 1-10 events; "
        "broker: the script's own redis-server; database: SQLite (WAL) in a temp dir; "
        "client: http.client (keep-alive) per sender, on the same 2 cores.",
        "",
        "| worker model | senders | events | envelopes | events/s | envelope p50 ms "
        "| p99 ms | max ms | all applied after the last answer | stored exactly once "
        "| redelivery no-op | enrich tasks in Redis |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for p in phases:
        lines.append(
            f"| {p.model} | {p.senders} | {p.events:,} | {p.envelopes:,} | "
            f"{p.events_per_s:,.0f} | {p.pct(50):.1f} | {p.pct(99):.1f} | "
            f"{max(p.latencies_ms):.1f} | {p.applied_after_s * 1000:,.0f} ms | "
            f"{'yes' if p.exactly_once else 'NO'} ({p.stored:,} rows, {p.distinct:,} distinct, "
            f"{p.missing} missing) | {'yes' if p.redelivered_dupes_ok else 'NO'} | "
            f"{p.queued:,} |"
        )
    lines += [
        "",
        "Target: >= 1,000 events/s and p99 < 20 ms (1 sender), every event stored once.",
        "",
    ]
    for p in phases:
        ok = p.events_per_s >= 1000 and p.pct(99) < 20 and p.exactly_once
        verdict = f"**{'PASS' if ok else 'FAIL'}**" if p.senders == 1 else "no target (load test)"
        lines.append(
            f"- {p.model}, {p.senders} sender(s): {p.events_per_s:,.0f} events/s, "
            f"p99 {p.pct(99):.1f} ms: {verdict}"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="events per phase")
    add_models_option(parser, MODELS, DEFAULT_MODELS)
    parser.add_argument("--senders", default="1,4", help="sender counts to run, e.g. 1 or 1,4")
    args = parser.parse_args()
    if not require_tool("redis-server"):
        return 2
    models = selected_models(parser, args.models, MODELS)
    sender_counts = [int(s) for s in args.senders.split(",")]
    rng = random.Random(20250101)
    phases: list[Phase] = []

    with tempfile.TemporaryDirectory(prefix="portus-webhook-bench-") as tmp:
        data_dir = Path(tmp)
        redis_server = Redis(data_dir).start()
        redis_url = redis_server.url
        try:
            set_portus_env(data_dir, redis_url, {"PORTUS_WEBHOOK_SECRET": SECRET})
            seed(data_dir)
            redis_version = subprocess.run(
                ["redis-server", "--version"], capture_output=True, text=True
            )
            facts = machine_facts({"redis": redis_version.stdout.split(" sha=")[0].strip()})
            broker = redis.Redis.from_url(redis_url)
            for model in models:
                with Gunicorn(
                    data_dir / f"gunicorn-{model.replace(':', '_')}.log",
                    MODELS[model],
                    webhook_ready,
                ) as server:
                    # Unmeasured: statements compile and threads open connections on first use.
                    warmup = f"warmup/{model}/"
                    deliver(server.base, make_envelopes(rng, warmup, WARMUP_EVENTS)[0], [])
                    wait_applied(data_dir / "portus.db", warmup)
                    for senders in sender_counts:
                        print(f"== {model}, {senders} sender(s)", flush=True)
                        before = broker.llen("portus_fab")
                        phase = run_phase(
                            server.base, data_dir / "portus.db", model, senders, args.events, rng
                        )
                        phase.queued = broker.llen("portus_fab") - before
                        phases.append(phase)
                        print(
                            f"   {phase.events_per_s:,.0f} events/s, p50 {phase.pct(50):.1f} ms, "
                            f"p99 {phase.pct(99):.1f} ms, exactly once: {phase.exactly_once}, "
                            f"mean {statistics.fmean(phase.latencies_ms):.1f} ms",
                            flush=True,
                        )
        finally:
            redis_server.stop()
    add_end_load(facts)
    write_report(RESULTS, report(facts, phases, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
