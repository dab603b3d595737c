"""Benchmark: the browse pages over a large catalog, for a user who may see part of it.

Run from the repository root:

    .venv/bin/python bench/pages_bench.py              # ~1 minute
    .venv/bin/python bench/pages_bench.py --requests 20

Seeds (SQLAlchemy Core bulk inserts) 10,000 repositories with 10 tags each across 500 private
team namespaces, and two users with viewer grants: `viewer` on 50 namespaces (1,000 visible
repositories) and `small` on 5 namespaces (100 visible). Passwords are scrypt (FAB's default).

Then:
  1. gunicorn (`run:create_app()`, gthread, 2 workers x 4 threads) serves the app; a
     requests.Session logs in as `viewer` through the /login/ form (CSRF is on: the token is
     taken from the login page) and times ~50 sequential requests each of the explore page
     (/registry/), a repository page and a search (/registry/?q=...): p50, p90, max.
  2. In-process, with the Flask test client and a `before_cursor_execute` counter on the engine,
     the same three pages are fetched as `viewer` (1,000 visible) and as `small` (100 visible):
     SQL statements per page, which must not grow with the number of visible rows.
Target: p50 < 100 ms per page. Results: stdout and bench/results/pages_bench.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from common import (
    ROOT,
    Gunicorn,
    add_end_load,
    add_user,
    create_app,
    machine_facts,
    percentile,
    report_header,
    set_portus_env,
    write_report,
)

RESULTS = ROOT / "bench" / "results" / "pages_bench.md"
NAMESPACES, REPOS_PER_NAMESPACE, TAGS_PER_REPO = 500, 20, 10
USERS = {"viewer": 50, "small": 5}  # username -> namespaces granted (x 20 repositories)
PASSWORD = "bench-password-1"
WORKERS, THREADS = 2, 4
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def seed(app: Any) -> dict[str, int]:
    """Bulk-insert the catalog with Core; users and grants through the app's own code."""
    from sqlalchemy import func, insert, select

    from portus_fab.models import Grant, Namespace, NamespaceKind, Repository, Role, Tag, Visibility

    started = time.perf_counter()
    session = app.appbuilder.session
    users = {}
    for username in USERS:
        user = add_user(app, username, username, PASSWORD)
        assert user and user.password.startswith("scrypt:")
        users[username] = user.id
    now = dt.datetime(2025, 6, 1)
    session.execute(
        insert(Namespace),
        [
            {
                "name": f"ns{n:03d}",
                "description": f"team namespace {n}",
                "visibility": Visibility.PRIVATE,
                "kind": NamespaceKind.TEAM,
                "created_at": now,
            }
            for n in range(NAMESPACES)
        ],
    )
    ns_ids = dict(session.execute(select(Namespace.name, Namespace.id)).all())
    session.execute(
        insert(Repository),
        [
            {
                "name": f"ns{n:03d}/repo{r:02d}",
                "namespace_id": ns_ids[f"ns{n:03d}"],
                "description": "",
                "created_at": now,
                "last_pushed_at": now - dt.timedelta(minutes=n * REPOS_PER_NAMESPACE + r),
                "pull_count": (n * 7 + r) % 1000,
            }
            for n in range(NAMESPACES)
            for r in range(REPOS_PER_NAMESPACE)
        ],
    )
    repo_ids = session.execute(select(Repository.id).order_by(Repository.id)).scalars().all()
    rows = []
    for repo_id in repo_ids:
        for t in range(TAGS_PER_REPO):
            digest = "sha256:" + hashlib.sha256(f"{repo_id}-{t}".encode()).hexdigest()
            rows.append(
                {
                    "repository_id": repo_id,
                    "name": "latest" if t == 0 else f"v1.{t}",
                    "digest": digest,
                    "media_type": "application/vnd.oci.image.manifest.v1+json",
                    "pushed_by": "ci",
                    "pushed_at": now - dt.timedelta(hours=t),
                    "pull_count": t,
                    "enriched_digest": digest,
                    "enriched_at": now,
                    "size": 1_000_000 + repo_id * 10 + t,
                    "created": now - dt.timedelta(days=t),
                    "platforms": ["linux/amd64", "linux/arm64"],
                    "labels": {"org.opencontainers.image.source": "https://example.test/src"},
                    "details": {},
                }
            )
    session.execute(insert(Tag), rows)
    grants = []
    offset = 0
    for username, count in USERS.items():
        for n in range(offset, offset + count):
            grants.append(
                {
                    "namespace_id": ns_ids[f"ns{n:03d}"],
                    "user_id": users[username],
                    "role": Role.VIEWER,
                }
            )
        offset += count
    session.execute(insert(Grant), grants)
    session.commit()
    counts = {
        "namespaces": session.scalar(select(func.count(Namespace.id))),
        "repositories": session.scalar(select(func.count(Repository.id))),
        "tags": session.scalar(select(func.count(Tag.id))),
        "seconds": round(time.perf_counter() - started, 1),
    }
    session.remove()
    return counts


def csrf_token(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no csrf_token on the login page"
    return match[1] or match[2]


def pages(username: str) -> dict[str, str]:
    # viewer holds ns000-ns049, small holds ns050-ns054 (see seed): a visible repository each.
    first = 0 if username == "viewer" else USERS["viewer"]
    return {
        "explore": "/registry/",
        "repository": f"/registry/repositories/ns{first + 3:03d}/repo07",
        "search": "/registry/?q=repo07",
    }


def check_page(name: str, status: int, html: str, username: str) -> None:
    assert status == 200, (name, status, html[:500])
    if name == "explore":
        assert f"ns{0 if username == 'viewer' else 50:03d}/repo00" in html, "explore misses a repo"
        assert "ns499/" not in html, "explore shows a private repository"
    if name == "search":
        assert "repo07" in html and "repo06" not in html, "search shows non-matching rows"


def login_page_ready(base: str) -> bool:
    """Up once the login form renders: the app, its database and its templates all work."""
    return requests.get(f"{base}/login/", timeout=2).status_code == 200


def http_login(base: str, username: str) -> requests.Session:
    session = requests.Session()
    token = csrf_token(session.get(f"{base}/login/", timeout=10).text)
    response = session.post(
        f"{base}/login/",
        data={"username": username, "password": PASSWORD, "csrf_token": token},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code in (302, 303), (response.status_code, response.text[:500])
    assert "/login" not in response.headers.get("Location", ""), "login refused"
    return session


def time_pages(base: str, count: int) -> dict[str, list[float]]:
    session = http_login(base, "viewer")
    timings: dict[str, list[float]] = {}
    for name, path in pages("viewer").items():
        for _ in range(3):  # warm-up: templates compiled, connections opened, in both workers
            response = session.get(f"{base}{path}", timeout=30)
            check_page(name, response.status_code, response.text, "viewer")
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            response = session.get(f"{base}{path}", timeout=30)
            samples.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200
        timings[name] = samples
    return timings


def count_queries(app: Any) -> dict[str, dict[str, int]]:
    """SQL statements per page, in-process, for each user (1,000 vs 100 visible)."""
    from sqlalchemy import event

    with app.app_context():
        engine = app.appbuilder.session.get_bind()
    statements: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    counts: dict[str, dict[str, int]] = {}
    try:
        for username in USERS:
            client = app.test_client()
            token = csrf_token(client.get("/login/").get_data(as_text=True))
            response = client.post(
                "/login/",
                data={"username": username, "password": PASSWORD, "csrf_token": token},
            )
            assert response.status_code in (302, 303), response.status_code
            counts[username] = {}
            for name, path in pages(username).items():
                client.get(path)  # first visit may load caches; count the second
                statements.clear()
                response = client.get(path)
                check_page(name, response.status_code, response.get_data(as_text=True), username)
                counts[username][name] = len(statements)
                counts[username][f"{name} (portus_ tables)"] = sum(
                    "portus_" in statement for statement in statements
                )
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    return counts


def report(
    facts: dict[str, str],
    seeded: dict[str, int],
    timings: dict[str, list[float]],
    queries: dict[str, dict[str, int]],
) -> str:
    paths = pages("viewer")
    lines = [
        *report_header(
            "pages_bench", "explore, repository and search pages over 10,000 repositories", facts
        ),
        f"Seeded with Core bulk inserts in {seeded['seconds']} s: {seeded['namespaces']:,} "
        f"namespaces, {seeded['repositories']:,} repositories, {seeded['tags']:,} tags "
        "(SQLite). User `viewer` holds viewer grants on 50 namespaces (1,000 visible "
        "repositories), `small` on 5 (100); everything else is private.",
        "",
        f"Server: gunicorn gthread, {WORKERS} workers x {THREADS} threads. Client: one "
        "requests.Session logged in through /login/ (CSRF token from the form), sequential "
        "requests, same 2 cores.",
        "",
        "| page (as viewer) | path | requests | p50 ms | p90 ms | mean ms | max ms "
        "| SQL statements, 1,000 visible | SQL statements, 100 visible |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, samples in timings.items():
        p50, p90 = percentile(samples, 50), percentile(samples, 90)
        lines.append(
            f"| {name} | `{paths[name]}` | {len(samples)} | {p50:.1f} | {p90:.1f} | "
            f"{statistics.fmean(samples):.1f} | {max(samples):.1f} | "
            f"{queries['viewer'][name]} ({queries['viewer'][f'{name} (portus_ tables)']}) | "
            f"{queries['small'][name]} ({queries['small'][f'{name} (portus_ tables)']}) |"
        )
    lines += [
        "",
        "SQL statements: every statement of the request, counted in-process (Flask test client, "
        "`before_cursor_execute`), second visit; in brackets those touching portus_ tables. The "
        "rest is FAB's: loading the logged-in user (user, roles, groups) and one permission "
        "check per route and per menu item.",
        "",
        "Target: p50 < 100 ms per page; statements per page independent of rows.",
        "",
    ]
    for name, samples in timings.items():
        same = all(
            queries["viewer"][key] == queries["small"][key]
            for key in (name, f"{name} (portus_ tables)")
        )
        ok = percentile(samples, 50) < 100 and same
        lines.append(
            f"- {name}: p50 {percentile(samples, 50):.1f} ms, statements "
            f"{queries['viewer'][name]} vs {queries['small'][name]}: "
            f"**{'PASS' if ok else 'FAIL'}**"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="timed requests per page")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="portus-pages-bench-") as tmp:
        data_dir = Path(tmp)
        set_portus_env(data_dir, "memory://")
        app = create_app(data_dir)
        with app.app_context():
            seeded = seed(app)
        print(f"seeded {seeded}", flush=True)
        facts = machine_facts()
        model = ("gthread", WORKERS, THREADS)
        with Gunicorn(data_dir / "gunicorn.log", model, login_page_ready) as server:
            timings = time_pages(server.base, args.requests)
        for name, samples in timings.items():
            p50, p90 = percentile(samples, 50), percentile(samples, 90)
            print(f"   {name:11} p50 {p50:6.1f} ms  p90 {p90:6.1f} ms")
        queries = count_queries(app)
        print(f"   statements per page: {queries}", flush=True)
    add_end_load(facts)
    write_report(RESULTS, report(facts, seeded, timings, queries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
