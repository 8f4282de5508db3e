#!/usr/bin/env python3
"""Writes the Markdown report of scripts/bench.sh from its results file.

  report.py --results target/bench/results.jsonl --out target/bench/report.md \
            [--meta key=value ...]

Every figure is the median of its runs, followed by the min-max spread when
there was more than one run.
"""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in scripts/bench/
import report_cases  # noqa: E402  (after the line above)
import report_latency  # noqa: E402
import report_retention  # noqa: E402

# The targets of issue #7.
TARGET_SUBMIT_RATIO = 0.8
TARGET_E2E = 3000
TARGET_READ = 15000
TARGET_SUBMIT_P99_MS = 25
TARGET_RSS_MB = 60
TARGET_READY_MS = 250


# Medians and min-max spreads, shared with the sections of cases (f) to (i).
median = report_cases.median
spread = report_cases.spread


def num(value):
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ms(value):
    return "n/a" if value is None else f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def mb(kb):
    return "n/a" if kb is None else f"{kb / 1024:.1f} MB"


def ratio(a, b):
    if a is None or not b:
        return None
    return a / b


def ratio_text(value):
    return "n/a" if value is None else f"{value:.2f}×"


def verdict(ok):
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


class Results:
    def __init__(self, path):
        self.records = []
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if line:
                    self.records.append(json.loads(line))

    def select(self, **match):
        return [r for r in self.records if all(r.get(k) == v for k, v in match.items())]

    def values(self, key, **match):
        return [r.get(key) for r in self.select(**match)]

    def clients(self, phase):
        return sorted({r["clients"] for r in self.select(phase=phase)})


def e2e_sets(results):
    """(label, set, n) of every end-to-end case, the headline one first."""
    order = {"main": 0, "curve": 1}
    cases = sorted({(r["set"], r["n"]) for r in results.select(phase="e2e")},
                   key=lambda c: (order.get(c[0], 3), c[1]))
    labels = []
    for set_name, n in cases:
        labels.append((f"{n:,}", set_name, n))
    return labels


def cpu_share_row(name, records, duration_key, pgbench=False):
    """Average cores used by each component during the runs. pgbench's
    backends start and exit within the run, so /proc cannot see them
    afterwards: for pgbench, PostgreSQL is what the machine used beyond
    pgbench itself and Redis, and *other* cannot be told apart."""
    parts = ("api", "worker", "postgres", "redis", "load_tool", "other", "machine_busy")
    cells = []
    for part in parts:
        values = []
        for r in records:
            cpu = dict(r.get("cpu", {}))
            seconds = r.get(duration_key)
            if "machine_busy" in cpu:
                cpu["other"] = cpu["machine_busy"] - sum(
                    cpu.get(k, 0.0) for k in parts[:5])
                if pgbench:
                    cpu["postgres"] = cpu["postgres"] + cpu.pop("other")
            if part in cpu and seconds:
                values.append(cpu[part] / seconds)
        cells.append(spread(values, lambda v: f"{v:.2f}") if values else "–")
    return f"| {name} | " + " | ".join(cells) + " |"


def write(results, meta, out, profile=None, perf_summary=None):
    lines = []
    add = lines.append
    runs = meta.get("runs", "?")
    pg = {c: median(results.values("rps", phase="pgbench", clients=c))
          for c in results.clients("pgbench")}
    pg_p99 = {c: median(results.values("p99_ms", phase="pgbench", clients=c))
              for c in results.clients("pgbench")}
    pg_clients = {c: max(results.values("pg_clients", phase="pgbench", clients=c) or [c])
                  for c in results.clients("pgbench")}

    add("# Tasker benchmark report")
    add("")
    if meta.get("quick") == "1":
        add("> **Smoke test (`--quick`)**: one short run per figure; not for comparison.")
        add("")
    add(f"- Commit `{meta.get('commit', '?')}`; medians of **{runs}** runs, spread "
        "(min–max) in brackets; throughput runs of "
        f"{meta.get('duration_s', '?')} s each.")
    add(f"- Machine: {meta.get('cpus', '?')} cores ({meta.get('cpu_model', '?')}), "
        f"{meta.get('memory', '?')} memory, Linux {meta.get('kernel', '?')}; "
        f"{float(meta.get('idle_load', 0)):.0%} busy before the start. Each run waits "
        "(within a bound) for the machine to be idle; the CPU table shows what else ran.")
    add(f"- PostgreSQL {meta.get('postgres', '?')} ({meta.get('pg_settings', '')}), "
        f"Redis {meta.get('redis', '?')}, both local, shared with nothing else by design "
        "but not isolated from other users of the machine.")
    add(f"- Load generator: wrk {meta.get('wrk', '?')} (`-t2`, closed loop, `--latency`) and "
        "pgbench, **on the same cores** as Tasker, PostgreSQL and Redis: every figure "
        "includes the load generator's own CPU use.")
    add("- `tasker api` and `tasker worker` are separate processes of the release build, "
        "log level `warn`, default pool sizes (PostgreSQL 10 per process, Redis 16, "
        "worker concurrency 64).")
    if meta.get("settings"):
        add(f"- Settings changed from their defaults for this run: `{meta['settings']}`.")
    add("- Every run starts from a `tasks` table holding 100,000 finished tasks, vacuumed "
        "and analyzed (a service in steady state), after a CHECKPOINT; the pgbench "
        "database gets the same.")
    add("- (a) runs with the api alone (the worker is started afterwards), so the submit "
        "path is compared with pgbench's INSERT on equal terms; Tasker and pgbench runs "
        "alternate.")
    add("- pgbench runs the API's INSERT (`src/store/tasks.rs`, `insert_row`), one row per "
        "transaction, `-M prepared`, random UUIDs, at the same client count as wrk unless "
        "`max_connections` leaves fewer (then the count it ran with is shown).")
    add(f"- Whole benchmark: {int(meta.get('elapsed_s', 0)) // 60} min "
        f"{int(meta.get('elapsed_s', 0)) % 60} s.")
    add("")

    # --- targets ------------------------------------------------------------
    submit32 = median(results.values("rps", phase="submit", clients=32))
    p99_32 = median(results.values("p99_ms", phase="submit", clients=32))
    e2e_main = results.select(phase="e2e", set="main")
    e2e_rate = median([r["tasks_per_s"] for r in e2e_main if r.get("finished")])
    reads32 = median(results.values("rps", phase="read", clients=32))
    # The target applies to the headline workload; the cost curve's 512
    # clients are shown in the (a) table.
    headline = [r.get("api_peak_rss_kb") for r in results.records
                if r.get("phase") in ("e2e", "read")
                or (r.get("phase") == "submit" and r.get("clients") in (32, 256))]
    api_rss = max([v for v in headline if v] or [0]) or None
    worker_rss = max([v for v in results.values("worker_peak_rss_kb") if v] or [0]) or None
    ready = {p: median(results.values("ready_ms", kind="startup", process=p))
             for p in ("api", "worker")}
    submit_ratio = ratio(submit32, pg.get(32))

    def ok(value, test):
        return None if value is None else test(value)

    # Cases (a) to (e); a run of --cases f,g,h,i has none of them.
    has_old = any(results.select(phase=p) for p in ("submit", "e2e", "read")) or bool(
        results.select(kind="startup"))

    if has_old:
        add("## Targets (issue #7)")
        add("")
        add("| target | measured | |")
        add("|---|---|---|")
        add(f"| submit ≥ {TARGET_SUBMIT_RATIO}× pgbench one row per transaction (32 clients) | "
            f"{num(submit32)} req/s vs {num(pg.get(32))} tx/s = {ratio_text(submit_ratio)} | "
            f"{verdict(ok(submit_ratio, lambda v: v >= TARGET_SUBMIT_RATIO))} |")
        add(f"| end to end ≥ {TARGET_E2E:,} sum tasks/s, one worker process | "
            f"{num(e2e_rate)} tasks/s | {verdict(ok(e2e_rate, lambda v: v >= TARGET_E2E))} |")
        add(f"| cached read ≥ {TARGET_READ:,} req/s (32 clients) | {num(reads32)} req/s | "
            f"{verdict(ok(reads32, lambda v: v >= TARGET_READ))} |")
        add(f"| p99 submit ≤ {TARGET_SUBMIT_P99_MS} ms at 32 clients | {ms(p99_32)} | "
            f"{verdict(ok(p99_32, lambda v: v <= TARGET_SUBMIT_P99_MS))} |")
        add(f"| api peak RSS ≤ {TARGET_RSS_MB} MB (up to 256 clients) | {mb(api_rss)} | "
            f"{verdict(ok(api_rss, lambda v: v <= TARGET_RSS_MB * 1024))} |")
        add(f"| worker peak RSS ≤ {TARGET_RSS_MB} MB | {mb(worker_rss)} | "
            f"{verdict(ok(worker_rss, lambda v: v <= TARGET_RSS_MB * 1024))} |")
        for process in ("api", "worker"):
            add(f"| {process} start to `/ready` ≤ {TARGET_READY_MS} ms | {ms(ready[process])} | "
                f"{verdict(ok(ready[process], lambda v: v <= TARGET_READY_MS))} |")
        add("")

    # --- (a) submit ------------------------------------------------------------
    if results.select(phase="submit"):
        add("## (a) `POST /run-task` (sum), api alone")
        add("")
        add("Latency percentiles are wrk's, which include its correction for coordinated "
            "omission (a stalled request also counts the requests its connection could not "
            "send meanwhile); pgbench's are corrected the same way from its per-transaction "
            "log. *max* is the slowest single request, uncorrected.")
        add("")
        add("| clients | Tasker req/s | p50 | p99 | max | pgbench tx/s | pgbench p99 | pgbench max | "
            "req/s ÷ pgbench | p99 ÷ pgbench p99 | api peak RSS | errors |")
        add("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for c in results.clients("submit"):
            rps = results.values("rps", phase="submit", clients=c)
            p99 = results.values("p99_ms", phase="submit", clients=c)
            pg_rps = results.values("rps", phase="pgbench", clients=c)
            pg_label = "" if pg_clients.get(c, c) == c else f" ({pg_clients[c]} clients)"
            errors = sum(v or 0 for v in results.values("errors", phase="submit", clients=c))
            add(f"| {c} | {spread(rps, num)} | "
                f"{spread(results.values('p50_ms', phase='submit', clients=c), ms)} | "
                f"{spread(p99, ms)} | "
                f"{spread(results.values('max_ms', phase='submit', clients=c), ms)} | "
                f"{spread(pg_rps, num)}{pg_label} | "
                f"{spread(results.values('p99_ms', phase='pgbench', clients=c), ms)} | "
                f"{spread(results.values('max_ms', phase='pgbench', clients=c), ms)} | "
                f"{ratio_text(ratio(median(rps), pg.get(c)))} | "
                f"{ratio_text(ratio(median(p99), pg_p99.get(c)))} | "
                f"{spread(results.values('api_peak_rss_kb', phase='submit', clients=c), mb)} | "
                f"{errors} |")
        add("")

    # --- (b) end to end ------------------------------------------------------------
    sets = e2e_sets(results)
    if sets:
        add("## (b) End to end: submit N sum tasks, wait until all are finished")
        add("")
        add(f"Submitted by {meta.get('e2e_clients', 32)} wrk connections while the worker runs; "
            "the time runs from the first request to the last `completed_at` in PostgreSQL. "
            "The ratio compares tasks/s with pgbench's INSERT rate at 32 clients.")
        add("")
        add("*Re-dispatched* counts tasks the worker's reconciler sent again because they "
            "had waited in the queue longer than its quiet period (10 s), or because their "
            "message was lost (Redis flushed by someone else during the run).")
        add("")
        add("| tasks | time | tasks/s | ÷ pgbench | submit phase | submit req/s | submit p99 | "
            "queue wait p50 | submit→done p99 | re-dispatched | failed / unfinished runs |")
        add("|---|---|---|---|---|---|---|---|---|---|---|")
        for label, set_name, n in sets:
            rows = results.select(phase="e2e", n=n, set=set_name)
            done = [r for r in rows if r.get("finished")]
            rate = [r["tasks_per_s"] for r in done]
            failed = sum(r.get("failed", 0) for r in rows)
            unfinished = len(rows) - len(done)
            add(f"| {label} | {spread([r['seconds'] for r in done], lambda v: f'{v:.2f} s')} | "
                f"{spread(rate, num)} | {ratio_text(ratio(median(rate), pg.get(32)))} | "
                f"{spread([r['submit_seconds'] for r in done], lambda v: f'{v:.2f} s')} | "
                f"{spread([r['submit_rps'] for r in done], num)} | "
                f"{spread([r['submit_p99_ms'] for r in done], ms)} | "
                f"{spread([r['queue_wait_p50_ms'] for r in done], ms)} | "
                f"{spread([r['submit_to_done_p99_ms'] for r in done], ms)} | "
                f"{spread([r.get('redispatched') for r in done], num)} | "
                f"{failed} / {unfinished} |")
        add("")

    # --- (c) reads ------------------------------------------------------------
    if results.select(phase="read"):
        add("## (c) `GET /get-task-output` of finished tasks (Redis cache hits)")
        add("")
        add("| clients | req/s | p50 | p99 | cache hit share | req/s ÷ pgbench | errors |")
        add("|---|---|---|---|---|---|---|")
        for c in results.clients("read"):
            rps = results.values("rps", phase="read", clients=c)
            errors = sum(v or 0 for v in results.values("errors", phase="read", clients=c))
            add(f"| {c} | {spread(rps, num)} | "
                f"{spread(results.values('p50_ms', phase='read', clients=c), ms)} | "
                f"{spread(results.values('p99_ms', phase='read', clients=c), ms)} | "
                f"{spread(results.values('cache_hit_share', phase='read', clients=c), lambda v: f'{v:.1%}')} | "
                f"{ratio_text(ratio(median(rps), pg.get(c)))} | {errors} |")
        add("")

    # --- (d) memory ------------------------------------------------------------
    if has_old:
        add("## (d) Memory: peak RSS (VmHWM, reset before every run)")
        add("")
        add("| process | idle after start | (a) submit | (b) end to end | (c) reads | peak of all |")
        add("|---|---|---|---|---|---|")
        for process in ("api", "worker"):
            key = f"{process}_peak_rss_kb"
            idle = results.values("idle_rss_kb", kind="startup", process=process)
            cells = [spread(idle, mb)]
            for phase in ("submit", "e2e", "read"):
                values = [v for v in results.values(key, phase=phase) if v]
                cells.append(f"{mb(max(values))} max" if values else "–")
            overall = api_rss if process == "api" else worker_rss
            add(f"| {process} | " + " | ".join(cells) + f" | {mb(overall)} |")
        add("")

    # --- (e) startup ------------------------------------------------------------
    if results.select(kind="startup"):
        add("## (e) Start to `/ready`")
        add("")
        add("| process | to `/ready` 200 | first answer on the port |")
        add("|---|---|---|")
        for process in ("api", "worker"):
            add(f"| {process} | {spread(results.values('ready_ms', kind='startup', process=process), ms)} | "
                f"{spread(results.values('listening_ms', kind='startup', process=process), ms)} |")
        add("")

    # --- CPU ------------------------------------------------------------
    if has_old:
        add("## CPU: cores used on average during the runs")
        add("")
        add("Seconds of CPU per second of run (2.00 = both cores busy). PostgreSQL and Redis "
            "are counted machine-wide; *other* is everything else on the machine (the kernel's "
            "softirq work, and any other user of the machine). For pgbench, *load tool* is "
            "pgbench itself and *postgres* is the rest of the machine (its backends exit "
            "before they can be read), so it includes whatever else ran.")
        add("")
        add("| run | api | worker | postgres | redis | load tool | other | whole machine |")
        add("|---|---|---|---|---|---|---|---|")
        for c in results.clients("submit"):
            add(cpu_share_row(f"POST, {c} clients", results.select(phase="submit", clients=c),
                              "seconds"))
        for c in results.clients("pgbench"):
            rows = [dict(r, seconds=float(meta.get("duration_s", 0) or 0))
                    for r in results.select(phase="pgbench", clients=c)]
            add(cpu_share_row(f"pgbench, {c} clients", rows, "seconds", pgbench=True))
        for label, set_name, n in sets:
            add(cpu_share_row(f"end to end, {label}", results.select(phase="e2e", n=n, set=set_name),
                              "seconds"))
        for c in results.clients("read"):
            add(cpu_share_row(f"GET, {c} clients", results.select(phase="read", clients=c),
                              "seconds"))
        add("")

    # --- (f) to (i) ---------------------------------------------------------------
    report_cases.write(results, meta, add)
    report_retention.write(results, meta, add)
    report_latency.write(results, meta, add)

    # --- accounting ------------------------------------------------------------
    account = results.select(kind="account")
    if account:
        a = account[-1]
        add(f"## Cost per task ({a['n']:,} tasks submitted with no worker running, "
            "then run by a fresh worker)")
        add("")
        add(f"Submit phase {a.get('submit_seconds', 0):.2f} s, run phase "
            f"{a.get('run_seconds', 0):.2f} s. PostgreSQL counters are those of the "
            "benchmark's database (`pg_stat_database`, `pg_stat_user_tables`; ±0.01 per "
            "task); Redis commands are those of the api's and worker's connections "
            f"({a.get('redis_clients_submit', '?')} and {a.get('redis_clients_run', '?')} "
            "connections), read with `MONITOR`, which also "
            "inflates Redis's CPU here. A transaction is at least one round trip, and "
            "a group commit makes one transaction of many tasks (hence fewer than one "
            "per task); sqlx also sends a bare Sync when a connection goes back to its "
            "pool (and before using one idle for over a second), which no counter "
            "shows (see `--profile`).")
        add("")
        add("| per task | submit | run |")
        add("|---|---|---|")
        keys = ["xact_commit", "xact_rollback", "tasks_inserts", "tasks_updates",
                "tasks_hot_updates", "tasks_index_scans", "tup_fetched", "tup_returned"]
        for key in keys:
            add(f"| PostgreSQL {key} | {a['pg_submit'].get(key, 0):g} | "
                f"{a['pg_run'].get(key, 0):g} |")
        commands = sorted(set(a["redis_submit"]) | set(a["redis_run"]))
        for cmd in commands:
            add(f"| Redis {cmd.upper()} | {a['redis_submit'].get(cmd, 0):g} | "
                f"{a['redis_run'].get(cmd, 0):g} |")
        add(f"| Redis, all commands | {sum(a['redis_submit'].values()):.3g} | "
            f"{sum(a['redis_run'].values()):.3g} |")
        for part in ("api", "worker", "postgres", "redis", "load_tool", "machine_busy"):
            add(f"| CPU ms, {part.replace('_', ' ')} | "
                f"{a['cpu_ms_submit'].get(part, 0):.3f} | {a['cpu_ms_run'].get(part, 0):.3f} |")
        add("")

    if profile:
        add("## Socket round trips per task (`--profile`, strace of the api and the worker)")
        add("")
        add("Writes are requests sent (a pipelined batch is one write); reads that found "
            "nothing (EAGAIN) are left out of *reads*. Counted over an end-to-end run "
            "while traced, so the timing of that run means nothing.")
        add("")
        add("| process | peer | writes per task | reads per task |")
        add("|---|---|---|---|")
        for record in profile.select(kind="sockets"):
            per = record["per_task"]
            for peer in ("postgres", "redis", "http"):
                add(f"| {record.get('process', '?')} | {peer} | "
                    f"{per.get(peer + '_writes', 0):g} | {per.get(peer + '_reads', 0):g} |")
        add("")

    if perf_summary:
        add("## CPU samples during an end-to-end run (`--profile`, perf record -a)")
        add("")
        add("Leaf functions only (release builds have no frame pointers); other users "
            "of the machine show up as *other*.")
        add("")
        lines.extend(perf_summary.rstrip().splitlines())
        add("")

    with open(out, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--meta", action="append", default=[])
    parser.add_argument("--profile-results", help="results of scripts/bench/profile.sh")
    args = parser.parse_args()
    meta = dict(pair.split("=", 1) for pair in args.meta)
    profile = perf_summary = None
    if args.profile_results and os.path.exists(args.profile_results):
        profile = Results(args.profile_results)
        summary = os.path.join(os.path.dirname(args.profile_results), "perf-summary.md")
        if os.path.exists(summary):
            with open(summary, encoding="utf-8") as handle:
                perf_summary = handle.read()
    write(Results(args.results), meta, args.out, profile, perf_summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
