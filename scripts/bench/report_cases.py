"""Report sections of cases (f) to (i) of scripts/bench.sh: the first
minute of a new deployment, auth on and off, many tenants, and the shapes
other queues are measured with (issues #17 and #13). Used by report.py.

Ratios between two figures measured in the same run (Tasker and pgbench,
auth on and off, 8 tenants and 1) are taken run by run; the median of those
ratios is shown with its min-max spread. *Machine busy / other* is the share
of both cores busy during a run, and the share used by anything but the
benchmark's processes (other users of the machine).
"""

import statistics

# The targets of issues #17 and #13.
TARGET_FRESH_SUBMIT_RATIO = 0.8
TARGET_FRESH_E2E = 5000
TARGET_AUTH_RATIO = 0.90
TARGET_TENANTS_RATIO = 0.90
TARGET_BATCH_E2E = 15000
TARGET_SINGLE_E2E = 6000


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    text = fmt(statistics.median(values))
    if len(values) > 1:
        text += f" ({fmt(min(values))}–{fmt(max(values))})"
    return text


def num(value):
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ms(value):
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def count(value):
    return f"{value:g}"


def times(value):
    return f"{value:.2f}×"


def verdict(value, test):
    if value is None:
        return "n/a"
    return "**met**" if test(value) else "**not met**"


def paired_ratios(numerators, denominators, key, below_key=None):
    """numerator[key] / denominator[below_key or key] for each run both have."""
    by_run = {r.get("run"): r.get(below_key or key) for r in denominators}
    ratios = []
    for record in numerators:
        below = by_run.get(record.get("run"))
        if below and record.get(key) is not None:
            ratios.append(record[key] / below)
    return ratios


def cpu_ms(record, part, tasks):
    """CPU milliseconds per task of one component over the record's run."""
    value = record.get("cpu", {}).get(part)
    return None if value is None or not tasks else value * 1000 / tasks


def machine_shares(record):
    """(busy, other): the share of the machine's CPU busy during the run, and
    the share used by processes other than the api, the worker, PostgreSQL,
    Redis and the load generator. PostgreSQL is counted machine-wide, so
    other users of the same server count as ours."""
    cpu = record.get("cpu", {})
    busy, share = cpu.get("machine_busy"), cpu.get("machine_busy_share")
    if not busy or not share:
        return None, None
    ours = sum(cpu.get(k, 0.0) for k in ("api", "worker", "postgres", "redis", "load_tool"))
    return share, max(0.0, busy - ours) / (busy / share)


def busy_cell(records):
    """`busy / other` shares of the machine, medians with spread."""
    shares = [machine_shares(r) for r in records]
    return (f"{spread([b for b, _ in shares], percent)} / "
            f"{spread([o for _, o in shares], percent)}")


def percent(value):
    return f"{value:.0%}"


def span_seconds(record):
    """From the first `created_at` to the last `completed_at` of a run."""
    finished = record.get("completed", 0) + record.get("failed", 0)
    rate = record.get("tasks_per_s")
    return finished / rate if rate else None


def seq_read(record):
    """Rows of `tasks` read by sequential scans, per task (e2e --pg-stats)."""
    pg = record.get("pg_per_task")
    return None if pg is None else pg.get("tasks_seq_tup_read", 0)


class Cases:
    """The records of (f) to (i), picked out of the results."""

    def __init__(self, results):
        self.fresh = [r for r in results.select(phase="fresh") if r.get("finished")]
        self.fresh_all = results.select(phase="fresh")
        self.fresh_pg = results.select(phase="fresh_pgbench")
        self.auth = {a: results.select(phase="auth", auth=a) for a in ("false", "true")}
        self.tenants = {}
        for record in results.select(phase="tenants"):
            self.tenants.setdefault(record["tenants"], []).append(record)
        self.shapes = {s: results.select(phase="shape", shape=s) for s in ("single", "batch")}

    def any(self):
        return bool(self.fresh_all or self.auth["true"] or self.tenants
                    or self.shapes["single"] or self.shapes["batch"])

    def fresh_submit_ratios(self):
        return paired_ratios(self.fresh_all, self.fresh_pg, "rps")

    def auth_ratios(self):
        return paired_ratios(self.auth["true"], self.auth["false"], "rps")

    def tenant_counts(self):
        return sorted(self.tenants)

    def tenants_ratios(self):
        counts = self.tenant_counts()
        if len(counts) < 2:
            return []
        many, one = self.tenants[counts[-1]], self.tenants[counts[0]]
        return paired_ratios([r for r in many if r.get("finished")],
                             [r for r in one if r.get("finished")], "tasks_per_s")

    def shape_rate(self, shape):
        return median([r["tasks_per_s"] for r in self.shapes[shape] if r.get("finished")])


def targets(cases, add):
    fresh_ratio = median(cases.fresh_submit_ratios())
    fresh_e2e = median([r["tasks_per_s"] for r in cases.fresh])
    auth_ratio = median(cases.auth_ratios())
    tenants_ratio = median(cases.tenants_ratios())
    batch = cases.shape_rate("batch")
    single = cases.shape_rate("single")

    def fmt_ratio(value):
        return "n/a" if value is None else times(value)

    def fmt_rate(value):
        return "n/a" if value is None else f"{num(value)} tasks/s"

    add("## Targets (issues #17 and #13)")
    add("")
    add("Ratios of two figures measured in the same run (Tasker and pgbench, auth on and "
        "off, 8 tenants and one) are taken run by run: the median of those ratios, with "
        "their spread in the tables below. *Machine busy / other* in the tables is the "
        "share of both cores busy during a run, and the share used by anything but the "
        "benchmark's processes (PostgreSQL is counted machine-wide, so other users of the "
        "same server count as the benchmark's).")
    add("")
    add("| target | measured (median) | |")
    add("|---|---|---|")
    add(f"| (f) fresh database, worker running: submit ≥ {TARGET_FRESH_SUBMIT_RATIO}× pgbench "
        f"(32 clients, same run) | {fmt_ratio(fresh_ratio)} | "
        f"{verdict(fresh_ratio, lambda v: v >= TARGET_FRESH_SUBMIT_RATIO)} |")
    add(f"| (f) fresh database: end to end ≥ {TARGET_FRESH_E2E:,} tasks/s | "
        f"{fmt_rate(fresh_e2e)} | {verdict(fresh_e2e, lambda v: v >= TARGET_FRESH_E2E)} |")
    add(f"| (g) submit with auth on ≥ {TARGET_AUTH_RATIO:.2f}× auth off | "
        f"{fmt_ratio(auth_ratio)} | {verdict(auth_ratio, lambda v: v >= TARGET_AUTH_RATIO)} |")
    add(f"| (h) end to end, 8 tenants ≥ {TARGET_TENANTS_RATIO:.2f}× one tenant (auth on) | "
        f"{fmt_ratio(tenants_ratio)} | "
        f"{verdict(tenants_ratio, lambda v: v >= TARGET_TENANTS_RATIO)} |")
    add(f"| (i) 100 per call, end to end ≥ {TARGET_BATCH_E2E:,} tasks/s | {fmt_rate(batch)} | "
        f"{verdict(batch, lambda v: v >= TARGET_BATCH_E2E)} |")
    add(f"| (i) one per call, end to end ≥ {TARGET_SINGLE_E2E:,} tasks/s | {fmt_rate(single)} | "
        f"{verdict(single, lambda v: v >= TARGET_SINGLE_E2E)} |")
    add("")


def fresh_section(cases, meta, add):
    rows = cases.fresh
    add("## (f) Fresh database: api and one worker at once, then drained")
    add("")
    add("Every run creates and migrates a new database (never analyzed: `reltuples` "
        "= -1) and starts the api and one worker on it; wrk posts `sum` tasks at 32 "
        f"connections for {meta.get('duration_s', '?')} s, then the run waits until the "
        "worker has finished every task the api accepted. *End to end* is the tasks "
        "stored ÷ (last `completed_at` − first `created_at`). pgbench runs the API's "
        "INSERT at 32 clients right after, in the same run, on its own database (seeded "
        "and analyzed, as in (a)). Sequential reads are `seq_tup_read` of `tasks` "
        "(`pg_stat_user_tables`) over the run, divided by the tasks stored.")
    add("")
    add("| figure | median (min–max) |")
    add("|---|---|")
    add(f"| submit req/s (wrk, worker running) | {spread([r['rps'] for r in rows], num)} |")
    add(f"| submit p50 / p99 | {spread([r['p50_ms'] for r in rows], ms)} / "
        f"{spread([r['p99_ms'] for r in rows], ms)} |")
    add(f"| pgbench INSERT tx/s, same run | {spread([r['rps'] for r in cases.fresh_pg], num)} |")
    add(f"| pgbench clients (32 unless `max_connections` left fewer) | "
        f"{spread([r.get('pg_clients') for r in cases.fresh_pg], count)} |")
    add(f"| submit ÷ pgbench | {spread(cases.fresh_submit_ratios(), times)} |")
    add(f"| tasks accepted per run | {spread([r['accepted'] for r in rows], num)} |")
    add(f"| end to end, tasks/s | {spread([r['tasks_per_s'] for r in rows], num)} |")
    add(f"| end to end ÷ pgbench | "
        f"{spread(paired_ratios(rows, cases.fresh_pg, 'tasks_per_s', 'rps'), times)} |")
    add(f"| first `created_at` to last `completed_at` (wrk ran {meta.get('duration_s', '?')} s) | "
        f"{spread([span_seconds(r) for r in rows], lambda v: f'{v:.2f} s')} |")
    add(f"| queue wait p50 / submit→done p99 | "
        f"{spread([r['queue_wait_p50_ms'] for r in rows], ms)} / "
        f"{spread([r['submit_to_done_p99_ms'] for r in rows], ms)} |")
    add(f"| `tasks` rows read by sequential scans, per task | "
        f"{spread([r['tasks_seq_tup_read'] / max(1, r['stored']) for r in rows], num)} |")
    add(f"| sequential scans of `tasks` per run | "
        f"{spread([r['tasks_seq_scans'] for r in rows], count)} |")
    add(f"| (auto)analyzes of `tasks` during the run | "
        f"{spread([r['tasks_analyzes'] for r in rows], count)} |")
    for part in ("api", "worker", "postgres", "machine_busy"):
        add(f"| CPU ms per task, {part.replace('_', ' ')} | "
            f"{spread([cpu_ms(r, part, r['stored']) for r in rows], num)} |")
    add(f"| machine busy / of it, other processes | {busy_cell(rows)} |")
    add(f"| api / worker peak RSS | "
        f"{spread([r.get('api_peak_rss_kb', 0) / 1024 for r in rows], lambda v: f'{v:.1f} MB')} / "
        f"{spread([r.get('worker_peak_rss_kb', 0) / 1024 for r in rows], lambda v: f'{v:.1f} MB')} |")
    errors = sum(r.get("errors", 0) for r in cases.fresh_all)
    failed = sum(r.get("failed", 0) for r in cases.fresh_all)
    add(f"| HTTP errors / failed tasks / unfinished runs | {errors} / {failed} / "
        f"{len(cases.fresh_all) - len(rows)} |")
    add("")


def auth_section(cases, add):
    add("## (g) `POST /run-task` with API keys required, beside the same without")
    add("")
    add("The api alone (as in (a)), 32 wrk connections; one tenant key sent as "
        "`Authorization: Bearer` (the same wrk script sends no header when auth is off). "
        "The two alternate, their order swapped every run, each with a new api.")
    add("")
    add("| auth | req/s | p50 | p99 | api CPU ms per request | machine busy / other | errors |")
    add("|---|---|---|---|---|---|---|")
    for auth, label in (("false", "off"), ("true", "on")):
        rows = cases.auth[auth]
        add(f"| {label} | {spread([r['rps'] for r in rows], num)} | "
            f"{spread([r['p50_ms'] for r in rows], ms)} | "
            f"{spread([r['p99_ms'] for r in rows], ms)} | "
            f"{spread([cpu_ms(r, 'api', r['requests']) for r in rows], lambda v: f'{v:.3f}')} | "
            f"{busy_cell(rows)} | {sum(r.get('errors', 0) for r in rows)} |")
    add(f"| on ÷ off | {spread(cases.auth_ratios(), times)} | | | | | |")
    add("")


def tenants_section(cases, meta, add):
    add("## (h) End to end with auth on: one tenant, and tasks spread over 8")
    add("")
    add(f"{meta.get('e2e_n', '?')} `sum` tasks submitted by 32 wrk connections with auth on, "
        "each request taking the next tenant's key in turn (round-robin), while one worker "
        "runs; beside the same with one tenant's key. The worker takes tenants in turn "
        "(fair scheduling). A new api and worker for every run; the order alternates.")
    add("")
    add("| tenants | tasks/s | submit req/s | submit p99 | queue wait p50 | "
        "CPU ms per task (machine) | machine busy / other | HTTP errors / failed / unfinished |")
    add("|---|---|---|---|---|---|---|---|")
    for count in cases.tenant_counts():
        rows = cases.tenants[count]
        done = [r for r in rows if r.get("finished")]
        add(f"| {count} | {spread([r['tasks_per_s'] for r in done], num)} | "
            f"{spread([r['submit_rps'] for r in done], num)} | "
            f"{spread([r['submit_p99_ms'] for r in done], ms)} | "
            f"{spread([r['queue_wait_p50_ms'] for r in done], ms)} | "
            f"{spread([cpu_ms(r, 'machine_busy', r['n']) for r in done], num)} | "
            f"{busy_cell(done)} | "
            f"{sum(r.get('http_errors', 0) for r in rows)} / "
            f"{sum(r.get('failed', 0) for r in rows)} / {len(rows) - len(done)} |")
    add(f"| many ÷ one | {spread(cases.tenants_ratios(), times)} | | | | | | |")
    add("")


def shapes_section(cases, meta, add):
    add("## (i) Peers' shapes: N tasks on a fresh database, one per call and 100 per call")
    add("")
    add(f"{meta.get('e2e_n', '?')} `sum` tasks, each run on a newly created and migrated "
        "database with a new api and worker: one task per `POST /run-task` with 32 in "
        f"flight, or {meta.get('batch_size', 100)} per `POST /run-tasks` with "
        f"{meta.get('batch_clients', 8)} in flight. *Accepted* is tasks ÷ the time until "
        "the api had answered every request; *end to end* runs from the first request to "
        "the last `completed_at`. CPU per task is the machine's busy CPU time over the "
        "run (load generator included) ÷ tasks.")
    add("")
    add("| shape | accepted tasks/s | end to end tasks/s | submit p99 (per call) | "
        "CPU ms per task: machine | api | worker | postgres | seq. rows read per task | "
        "machine busy / other | HTTP errors / failed / unfinished |")
    add("|---|---|---|---|---|---|---|---|---|---|---|")
    labels = {"single": "1 per call, 32 in flight",
              "batch": f"{meta.get('batch_size', 100)} per call, "
                       f"{meta.get('batch_clients', 8)} in flight"}
    for shape in ("single", "batch"):
        rows = cases.shapes[shape]
        if not rows:
            continue
        done = [r for r in rows if r.get("finished")]
        cpu = [spread([cpu_ms(r, part, r["n"]) for r in done], num)
               for part in ("machine_busy", "api", "worker", "postgres")]
        add(f"| {labels[shape]} | {spread([r['submit_rps'] for r in done], num)} | "
            f"{spread([r['tasks_per_s'] for r in done], num)} | "
            f"{spread([r['submit_p99_ms'] for r in done], ms)} | " + " | ".join(cpu) + " | "
            f"{spread([seq_read(r) for r in done], num)} | {busy_cell(done)} | "
            f"{sum(r.get('http_errors', 0) for r in rows)} / "
            f"{sum(r.get('failed', 0) for r in rows)} / {len(rows) - len(done)} |")
    add("")


def write(results, meta, add):
    """Adds the sections of whichever of (f) to (i) ran."""
    cases = Cases(results)
    if not cases.any():
        return
    targets(cases, add)
    if cases.fresh_all:
        fresh_section(cases, meta, add)
    if cases.auth["true"] or cases.auth["false"]:
        auth_section(cases, add)
    if cases.tenants:
        tenants_section(cases, meta, add)
    if cases.shapes["single"] or cases.shapes["batch"]:
        shapes_section(cases, meta, add)
