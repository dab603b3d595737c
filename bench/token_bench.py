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
                   (PORTUS_CREDENTIAL_CACHE_TTL; the cache is per worker process); the 400
                   floor and this row run in ROUNDS alternating rounds, so a load that drifts
                   weighs on the ratio's two sides alike
  - other credentials, each after its own warm-up, the same scope: alice's personal access
                   token (write) as the Basic password, the robot `alice+ci` (write), and the
                   POST refresh-token grant (the OAuth2 form, with the refresh token a
                   `docker login` GET got)
Beside it, up at the same time with the same worker model and database, a second server with
AUTH_TYPE = AUTH_LDAP (the file PORTUS_CONFIG_FILE names) signs people in against a real `slapd`
(tests/support/slapd.py, needs Debian's slapd). AUTH_TYPE is the whole app's, so the LDAP row
cannot come from the password row's server; it is measured in two halves right before and right
after the password row, so a load that drifts weighs on both alike: alice, the same scope, by her
directory password after a warm-up (a returning client, answered from the credential cache: the
directory's bind counter must not move). Then that server's floor, and the cost of sign-ins the
cache cannot answer, one request at a time: a person's first sign-in (the user and personal
namespace created) and a known user's sign-in with a password the cache has not seen.
The floor is the faster of the two floor endpoints. Target: tokens/s >= 0.65 of the floor with ES256
(half of it with RS256, whose signature alone costs about 1 ms) and >= 500/s; every other
credential's rows, the LDAP row too, >= 0.9 of the password row. Results: a
table on stdout and bench/results/token_bench.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    REGISTRY_URL,
    ROOT,
    Gunicorn,
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

# Of the floor, the tokens/s a returning user must reach, by signing algorithm.
FLOOR_SHARE = {"ES256": 0.65, "RS256": 0.5}
ROUNDS = 4  # of the 400 floor and the password row, alternating
RESULTS = ROOT / "bench" / "results" / "token_bench.md"
SERVICE = REGISTRY_URL.removeprefix("http://")
USER, PASSWORD = "alice", "alice-bench-password"
SCOPE = "repository:alice/app:pull,push"
# Each credential row after the password row: at least this share of its tokens/s.
CREDENTIAL_TARGET = 0.9
CONNECTIONS = 16
WRK_THREADS = 2
# name -> (gunicorn --worker-class, --workers, --threads)
MODELS: dict[str, WorkerModel] = {
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


def http_status(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


ROBOT = f"{USER}+ci"


@dataclass(frozen=True)
class Secrets:
    access_token: str
    robot: str


def seed(data_dir: Path) -> Secrets:
    """Create the app's tables and alice (scrypt password, personal namespace `alice`), her
    access token and her namespace's robot."""
    from portus_fab.access.policy import INTERNAL
    from portus_fab.auth import access_tokens, robots
    from portus_fab.core import portus
    from portus_fab.models.transaction import transaction

    app = create_app(data_dir)
    with app.app_context():
        user = add_user(app, USER, "Alice", PASSWORD)
        assert user, "could not create alice"
        assert user.password.startswith("scrypt:"), user.password[:20]
        core = portus()
        hasher = core.authentication.hasher
        with transaction(core.session) as session:
            rules = access_tokens.ExpiryRules.from_settings(core.settings)
            token = access_tokens.create_token(session, hasher, rules, user, "bench", "write")
            robot = robots.create_robot(session, hasher, INTERNAL, USER, "ci", "write")
        secrets = Secrets(token.secret, robot.secret)
        app.appbuilder.session.remove()
    return secrets


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match[1]) * _UNIT_MS[match[2]]


def wrk(
    label: str,
    url: str,
    seconds: float,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
) -> WrkResult:
    args = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
    ]
    if script is not None:
        args += ["-s", str(script)]
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


def server_ready(base: str) -> bool:
    """The token view rejects a bad scope before any database work: up, and cheap to ask."""
    return http_status(f"{base}/v2/token?scope=bad")[0] == 400


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


def refresh_grant_script(base: str, auth: dict[str, str], directory: Path) -> Path:
    """A wrk script POSTing the refresh-token grant, with a refresh token got as `docker login`
    gets one (GET offline_token=true&client_id=docker); checked to answer 200 first."""
    query = urllib.parse.urlencode(
        {"service": SERVICE, "offline_token": "true", "client_id": "docker"}
    )
    status, body = http_status(f"{base}/v2/token?{query}", auth)
    assert status == 200, (status, body[:300])
    form = urllib.parse.urlencode(
        {
            "grant_type": "refresh_token",
            "refresh_token": json.loads(body)["refresh_token"],
            "service": SERVICE,
            "client_id": "docker",
            "scope": SCOPE,
        }
    )
    request = urllib.request.Request(
        f"{base}/v2/token",
        data=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200 and json.load(answer)["access_token"]
    script = directory / "refresh_grant.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        f"wrk.body = {json.dumps(form)}\n"
    )
    return script


def basic(username: str, password: str) -> dict[str, str]:
    return {
        "Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    }


LDAP_LOGINS = 20  # sequential sign-ins per uncached kind


@dataclass
class LdapRun:
    results: list[WrkResult]  # floor, floor, the LDAP returning client
    binds: int  # binds the directory counted during the measured LDAP row
    first_ms: list[float]  # a person's first sign-in, one request at a time
    uncached_ms: list[float]  # a known user, a password the cache has not seen


def ldap_config_file(directory: Any, path: Path) -> Path:
    """The Python file PORTUS_CONFIG_FILE names: FAB's LDAP settings for `directory`, alice a
    User (through cn=devs) rather than an admin, cn=devs as the team devs."""
    from tests.support.slapd import DEVS_DN, ldap_settings

    settings = ldap_settings(
        directory,
        AUTH_ROLES_MAPPING={DEVS_DN: ["User"]},
        PORTUS_GROUP_TEAMS={DEVS_DN: ["devs", "contributor"]},
    )
    path.write_text("".join(f"{name} = {value!r}\n" for name, value in settings.items()))
    return path


def _timed_ms(url: str, auth: dict[str, str]) -> float:
    started = time.perf_counter()
    status, body = http_status(url, auth)
    elapsed = 1000 * (time.perf_counter() - started)
    assert status == 200, (status, body[:300])
    return elapsed


def combined(label: str, halves: list[WrkResult]) -> WrkResult:
    """One row from runs of equal length: mean rate and median, the worst p99."""
    return WrkResult(
        label=label,
        rps=sum(h.rps for h in halves) / len(halves),
        p50_ms=sum(h.p50_ms for h in halves) / len(halves),
        p99_ms=max(h.p99_ms for h in halves),
        requests=sum(h.requests for h in halves),
        non_2xx=sum(h.non_2xx for h in halves),
        socket_errors=", ".join(sorted({h.socket_errors for h in halves})),
    )


def run_model(
    name: str, data_dir: Path, seconds: float, warmup: float, secrets: Secrets
) -> tuple[str, list[WrkResult], LdapRun]:
    """Both servers of worker model `name` up side by side (an idle one costs nothing): the
    password rows on the AUTH_DB one, the LDAP rows on the AUTH_LDAP one, against a slapd."""
    from tests.support.slapd import ALICE, Person, Slapd

    worker_class, workers, threads = model = MODELS[name]
    auth = basic(USER, PASSWORD)
    ldap_auth = basic(USER, ALICE.password)
    token_url = f"/v2/token?service={SERVICE}&scope={SCOPE}"
    log_path = data_dir / f"gunicorn-{worker_class}-{workers}x{threads}.log"
    with Slapd() as directory:
        newcomers = [
            Person(f"new{i:02}", f"new{i:02}-pw", "New", f"N{i}") for i in range(LDAP_LOGINS)
        ]
        for person in newcomers:
            directory.add_person(person)
        ldap_server = Gunicorn(log_path.with_stem(f"{log_path.stem}-ldap"), model, server_ready)
        ldap_server.env["PORTUS_CONFIG_FILE"] = str(
            ldap_config_file(directory, data_dir / "ldap.py")
        )
        with Gunicorn(log_path, model, server_ready, backlog=256) as server, ldap_server:
            check_token(server.base, auth)
            check_token(ldap_server.base, ldap_auth)
            results = []
            wrk("warm-up", f"{server.base}/static/appbuilder/css/ab.css", warmup)
            results.append(
                wrk("floor: static ab.css", f"{server.base}/static/appbuilder/css/ab.css", seconds)
            )
            # Every worker process verifies the scrypt password (or binds) once, then serves it
            # from its cache.
            wrk("warm-up", f"{server.base}{token_url}", warmup, auth)
            wrk("warm-up", f"{ldap_server.base}{token_url}", warmup, ldap_auth)
            # The LDAP row in two halves around the password row, and the 400 floor and the
            # password row in alternating rounds: a load that drifts while they run weighs on
            # each pair alike, so their ratios hold still where the rates do not.
            ldap_label = "token (LDAP, returning client)"
            before = directory.bind_count()
            halves = [wrk(ldap_label, f"{ldap_server.base}{token_url}", seconds / 2, ldap_auth)]
            floor_rounds, token_rounds = [], []
            for _ in range(ROUNDS):
                floor_rounds.append(
                    wrk(
                        "floor: 400 bad scope",
                        f"{server.base}/v2/token?scope=bad",
                        seconds / ROUNDS,
                    )
                )
                token_rounds.append(
                    wrk(
                        "token (returning user)",
                        f"{server.base}{token_url}",
                        seconds / ROUNDS,
                        auth,
                    )
                )
            results.append(combined("floor: 400 bad scope", floor_rounds))
            results.append(combined("token (returning user)", token_rounds))
            halves.append(wrk(ldap_label, f"{ldap_server.base}{token_url}", seconds / 2, ldap_auth))
            binds = directory.bind_count() - before
            for label, credential in (
                ("token (access token)", basic(USER, secrets.access_token)),
                ("token (robot)", basic(ROBOT, secrets.robot)),
            ):
                check_token(server.base, credential)
                wrk("warm-up", f"{server.base}{token_url}", warmup, credential)
                results.append(wrk(label, f"{server.base}{token_url}", seconds, credential))
            # The same user by the refresh token docker login stored: no slow hash, no write.
            grant = refresh_grant_script(server.base, auth, data_dir)
            wrk("warm-up", f"{server.base}/v2/token", warmup, script=grant)
            results.append(
                wrk("token (POST refresh_token)", f"{server.base}/v2/token", seconds, script=grant)
            )
            ldap_base = ldap_server.base
            ldap_results = [
                wrk("floor: static ab.css", f"{ldap_base}/static/appbuilder/css/ab.css", seconds),
                wrk("floor: 400 bad scope", f"{ldap_base}/v2/token?scope=bad", seconds),
                combined(ldap_label, halves),
            ]
            first = [
                _timed_ms(
                    f"{ldap_base}/v2/token?service={SERVICE}"
                    f"&scope=repository:{person.uid}/app:pull,push",
                    basic(person.uid, person.password),
                )
                for person in newcomers
            ]
            uncached = []
            for i in range(LDAP_LOGINS):
                password = f"{ALICE.password}-{i}"
                directory.set_password(ALICE.dn, password)
                uncached.append(_timed_ms(f"{ldap_base}{token_url}", basic(USER, password)))
    return name, results, LdapRun(ldap_results, binds, first, uncached)


def _sign_for(seconds: float) -> int:
    """Tokens this process signs in `seconds` with a fresh key of the bench's algorithm."""
    from portus_fab.auth.keys import generate_signing_key
    from portus_fab.auth.tokens import issue_token

    key = generate_signing_key("bench", os.environ["PORTUS_TOKEN_ALGORITHM"])
    access = [{"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}]
    done, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        issue_token(key, issuer="i", audience=SERVICE, subject=USER, access=access, ttl=1800)
        done += 1
    return done


def signing_ms(processes: int, seconds: float = 3) -> float:
    """CPU milliseconds one token signature costs with `processes` signing at once (the server's
    workers do; on these 2 vCPUs two signers slow each other)."""
    with multiprocessing.Pool(processes) as pool:
        counts = pool.map(_sign_for, [seconds] * processes)
    return 1000 * seconds * processes / sum(counts)


def ceilings(floor: float, sign_ms: float, cores: int) -> float:
    """The best tokens/s as a share of the floor if a token cost only a floor request plus one
    signature: a floor request costs cores/floor seconds of CPU (server and wrk together)."""
    per_floor_request = cores / floor
    return per_floor_request / (per_floor_request + sign_ms / 1000)


def report(
    facts: dict[str, str],
    runs: list[tuple[str, list[WrkResult]]],
    ldap_runs: list[tuple[str, LdapRun]],
    seconds: float,
    sign: tuple[float, float],
) -> str:
    lines = [
        *report_header("token_bench", "GET /v2/token vs the floor", facts),
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
        floor_share = FLOOR_SHARE[os.environ["PORTUS_TOKEN_ALGORITHM"]]
        ok = token >= floor * floor_share and token >= 500
        verdicts.append(
            f"- {name}: tokens/s {token:,.0f} = {token / floor:.0%} of floor {floor:,.0f} "
            f"(target >= {floor_share:.0%} and >= 500/s): **{'PASS' if ok else 'FAIL'}**"
        )
        for other in results[3:]:
            share = other.rps / token
            verdicts.append(
                f"- {name}: {other.label} {other.rps:,.0f}/s = {share:.0%} of the password row "
                f"(target >= {CREDENTIAL_TARGET:.0%}): "
                f"**{'PASS' if share >= CREDENTIAL_TARGET else 'FAIL'}**"
            )
    for name, ldap_run in ldap_runs:
        for r in ldap_run.results:
            lines.append(
                f"| {name}, AUTH_LDAP | {r.label} | {r.rps:,.0f} | {r.p50_ms:.2f} "
                f"| {r.p99_ms:.2f} | {r.requests:,} | {r.non_2xx:,} | {r.socket_errors} |"
            )
    lines += ["", "Floor = the faster of the two floor rows of the same server run.", ""]
    lines += verdicts
    password_rows = {name: results[2] for name, results in runs}
    for name, ldap_run in ldap_runs:
        ldap_row, password = ldap_run.results[2], password_rows[name]
        share = ldap_row.rps / password.rps
        ldap_floor = max(ldap_run.results[0].rps, ldap_run.results[1].rps)
        floor = max(r.rps for r in dict(runs)[name][:2])
        lines.append(
            f"- {name}: token (LDAP, returning client) {ldap_row.rps:,.0f}/s = {share:.0%} of "
            f"the password row (target >= {CREDENTIAL_TARGET:.0%}): "
            f"**{'PASS' if share >= CREDENTIAL_TARGET else 'FAIL'}**; "
            f"{ldap_row.rps / ldap_floor:.0%} of its own server's floor {ldap_floor:,.0f} "
            f"(the password row: {password.rps / floor:.0%} of its floor); "
            f"binds during the row: {ldap_run.binds}"
        )
    lines += [
        "",
        "Sign-ins the cache cannot answer (AUTH_LDAP, one request at a time, "
        f"{LDAP_LOGINS} each, ms):",
        "",
    ]
    lines += ["| worker model | sign-in | p50 | p90 | max |", "|---|---|---:|---:|---:|"]
    for name, ldap_run in ldap_runs:
        for label, samples in (
            ("first sign-in (user and personal namespace created)", ldap_run.first_ms),
            ("known user, a password the cache has not seen", ldap_run.uncached_ms),
        ):
            lines.append(
                f"| {name} | {label} | {percentile(samples, 50):.1f} "
                f"| {percentile(samples, 90):.1f} | {max(samples):.1f} |"
            )
    alone, both = sign
    cores = os.cpu_count() or 1
    lines += [
        "",
        f"Signing one token ({os.environ['PORTUS_TOKEN_ALGORITHM']}, in process, "
        f"`issue_token`): {alone:.3f} ms of CPU with one signer, {both:.3f} ms each with two "
        "at once.",
        "",
    ]
    for name, results in runs:
        floor = max(results[0].rps, results[1].rps)
        lines.append(
            f"- {name}: even if a token cost nothing but a floor request and its signature, "
            f"tokens/s would top out at {ceilings(floor, both, cores):.0%} of the floor "
            f"({cores} cores, {both:.3f} ms per signature)."
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_models_option(parser, MODELS, DEFAULT_MODELS)
    parser.add_argument("--duration", type=float, default=8, help="seconds per measured row")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up")
    parser.add_argument(
        "--algorithm", default="ES256", choices=["ES256", "RS256"], help="token signing key"
    )
    args = parser.parse_args()
    os.environ["PORTUS_TOKEN_ALGORITHM"] = args.algorithm
    results = (
        RESULTS
        if args.algorithm == "ES256"  # the generated default
        else RESULTS.with_name(f"token_bench_{args.algorithm.lower()}.md")
    )
    if not require_tool("wrk"):
        return 2
    models = selected_models(parser, args.models, MODELS)

    with tempfile.TemporaryDirectory(prefix="portus-token-bench-") as tmp:
        data_dir = Path(tmp)
        set_portus_env(
            data_dir,
            "memory://",
            {"PORTUS_REGISTRY_SERVICE": SERVICE},
            unset=["PORTUS_CREDENTIAL_CACHE_TTL"],  # the default: 60 s
        )
        secrets = seed(data_dir)
        wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
        facts = machine_facts(
            {"wrk": (wrk_version.stdout + wrk_version.stderr).split("[")[0].strip()}
        )
        runs = []
        ldap_runs: list[tuple[str, LdapRun]] = []
        for name in models:
            print(f"== {name}", flush=True)
            _, rows, ldap_run = run_model(name, data_dir, args.duration, args.warmup, secrets)
            runs.append((name, rows))
            ldap_runs.append((name, ldap_run))
            for r in [*rows, *ldap_run.results]:
                print(
                    f"   {r.label:30} {r.rps:9,.0f} req/s  p50 {r.p50_ms:7.2f}  p99 {r.p99_ms:7.2f}"
                )
        sign = (signing_ms(1), signing_ms(2))
        print(f"   signing: {sign[0]:.3f} ms alone, {sign[1]:.3f} ms with two signers")
    add_end_load(facts)
    write_report(results, report(facts, runs, ldap_runs, args.duration, sign))
    return 0


if __name__ == "__main__":
    sys.exit(main())
