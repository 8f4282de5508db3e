#!/usr/bin/env python3
"""Measurement helpers for scripts/bench.sh (standard library only).

Every measuring subcommand appends one JSON object per run to the results
file named by --out; scripts/bench/report.py turns that file into the report.

  ports N                       print N free TCP ports on 127.0.0.1
  wait-ready URL SECONDS        wait until URL answers 200
  wait-idle                     wait (bounded) until the machine's CPU is idle
  reset                         put the tasks table and queues back to a run's start
  clear-queues                  empty a run's Redis queues
  startup ...                   time from spawning a command to its /ready
  wrk ...                       run wrk, record throughput, latency, peak RSS
  pgbench ...                   run pgbench, record TPS and latency percentiles
  e2e ...                       submit N tasks, wait until all are finished
  mixed ...                     submit for a fixed time while the worker runs,
                                then wait until every accepted task is finished
  account-submit ..., account-run ...
                                round trips and CPU per task, submit and run apart
  sockets ...                   socket reads and writes per task from an strace log
  perf-summary ...              where CPU samples of a perf record -a file fell
  metric URL NAME               print the sum of a Prometheus counter
"""

import argparse
import glob
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import defaultdict

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Every run starts from a `tasks` table holding SEED_TASKS finished tasks,
# analyzed, as a service in steady state has; their created_at lies before
# SEED_CUTOFF, and everything a run adds lies after it.
SEED_TASKS = 100_000
SEED_CUTOFF = "2001-01-01"
SEED_SQL = f"""
INSERT INTO tasks (id, task_name, task_parameters, status, task_output, queue, attempts,
                   max_attempts, request_id, run_after, dispatched_at, created_at,
                   started_at, completed_at, updated_at)
SELECT (lpad(to_hex(t0 + i), 12, '0') || '7' || substr(h, 1, 3) || '8'
        || substr(h, 4, 15))::uuid,
       'sum', '{{"a": 1, "b": 2}}', 'completed', '{{"result": 3}}', 'default', 1, 3, h,
       ts, ts, ts, ts, ts, ts
FROM (SELECT (extract(epoch FROM timestamptz '2000-01-01') * 1000)::bigint AS t0) base,
     generate_series(1, {SEED_TASKS}) AS i,
     LATERAL (SELECT md5(i::text) AS h,
                     timestamptz '2000-01-01' + i * interval '1 millisecond' AS ts) m
"""


# --- small utilities ---------------------------------------------------------


def http_get(url, timeout=2.0):
    """(status, body) of a GET, or (None, error text) when it cannot connect."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    except OSError as err:
        return None, str(err)
    finally:
        conn.close()


def append(out, record):
    with open(out, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


def extra_fields(pairs):
    """`key=value` strings to a dict; values that look numeric become numbers."""
    fields = {}
    for pair in pairs or []:
        key, _, value = pair.partition("=")
        try:
            fields[key] = int(value)
        except ValueError:
            try:
                fields[key] = float(value)
            except ValueError:
                fields[key] = value
    return fields


def named_pids(pairs):
    """`name=pid` strings to {name: pid}."""
    return {k: int(v) for k, v in (p.split("=", 1) for p in pairs or [])}


def proc_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def pids_by_comm(comm):
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", encoding="utf-8") as handle:
                if handle.read().strip() == comm:
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def machine_busy_seconds():
    """(busy, total) CPU seconds of the whole machine since boot."""
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


def cpu_snapshot(pids):
    """CPU seconds used so far by each named process, by all PostgreSQL and
    Redis server processes (machine-wide), and by the machine."""
    snap = {name: proc_cpu_seconds(pid) for name, pid in pids.items()}
    snap["postgres"] = {pid: proc_cpu_seconds(pid) for pid in pids_by_comm("postgres")}
    snap["redis"] = sum(proc_cpu_seconds(pid) for pid in pids_by_comm("redis-server"))
    snap["machine_busy"], snap["machine_total"] = machine_busy_seconds()
    snap["children"] = children_cpu_seconds()
    return snap


def cpu_delta(before, after):
    delta = {}
    for key, value in after.items():
        if key == "postgres":
            # New backends count in full; a backend that exited is lost.
            delta[key] = sum(v - before[key].get(pid, 0.0) for pid, v in value.items())
        else:
            delta[key] = value - before.get(key, 0.0)
    delta["load_tool"] = delta.pop("children")
    total = delta.pop("machine_total")
    delta["machine_busy_share"] = delta["machine_busy"] / total if total > 0 else 0.0
    return {k: round(v, 4) for k, v in delta.items()}


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def read_status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss(pids):
    """Sets VmHWM back to the current RSS (Linux: write 5 to clear_refs)."""
    for pid in pids.values():
        try:
            with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as handle:
                handle.write("5")
        except OSError:
            pass


def peak_rss(pids):
    fields = {}
    for name, pid in pids.items():
        hwm = read_status_kb(pid, "VmHWM")
        rss = read_status_kb(pid, "VmRSS")
        if hwm is not None:
            fields[f"{name}_peak_rss_kb"] = hwm
        if rss is not None:
            fields[f"{name}_rss_kb"] = rss
    return fields


def prometheus_sum(url, name):
    """Sum of every series of the metric `name` at a /metrics URL."""
    status, body = http_get(url, timeout=5.0)
    if status != 200:
        raise RuntimeError(f"{url} answered {status}: {body[:200]}")
    total = 0.0
    pattern = re.compile(r"^" + re.escape(name) + r"(\{[^}]*\})?\s+(\S+)")
    for line in body.splitlines():
        match = pattern.match(line)
        if match:
            total += float(match.group(2))
    return total


def prometheus_labelled(url, name, label_filter):
    status, body = http_get(url, timeout=5.0)
    if status != 200:
        raise RuntimeError(f"{url} answered {status}")
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name + "{") and label_filter in line:
            total += float(line.rsplit(None, 1)[1])
    return total


def psql(dburl, sql):
    out = subprocess.run(
        ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-F", "\t", "-d", dburl, "-c", sql],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip()


def shown(argv):
    """A command line for the log, API keys (`token=...`) left out."""
    return " ".join("token=…" if arg.startswith("token=") else arg for arg in argv)


def run_wrk(argv, log):
    """Runs wrk; returns (parsed BENCH_JSON, its CPU seconds, exit code)."""
    cpu_before = children_cpu_seconds()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    cpu = children_cpu_seconds() - cpu_before
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write("$ " + shown(argv) + "\n" + proc.stdout + proc.stderr + "\n")
    parsed = None
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            parsed = json.loads(line[len("BENCH_JSON "):])
    return parsed, cpu, proc.returncode, proc.stderr


def wrk_fields(parsed):
    seconds = parsed["duration_us"] / 1e6
    errors = sum(parsed[k] for k in (
        "connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return {
        "requests": parsed["requests"],
        "seconds": round(seconds, 3),
        "rps": round(parsed["requests"] / seconds, 1) if seconds > 0 else 0.0,
        "p50_ms": parsed["p50_us"] / 1000,
        "p90_ms": parsed["p90_us"] / 1000,
        "p99_ms": parsed["p99_us"] / 1000,
        "p999_ms": parsed["p999_us"] / 1000,
        "max_ms": parsed["max_us"] / 1000,
        "errors": errors,
    }


# --- subcommands ---------------------------------------------------------------


def cmd_ports(args):
    sockets = []
    try:
        for _ in range(args.count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        print(" ".join(str(s.getsockname()[1]) for s in sockets))
    finally:
        for sock in sockets:
            sock.close()


def cmd_wait_ready(args):
    deadline = time.monotonic() + args.seconds
    last = ""
    while time.monotonic() < deadline:
        status, body = http_get(args.url, timeout=1.0)
        if status == 200:
            return 0
        last = f"{status} {body[:200]}"
        time.sleep(0.05)
    print(f"{args.url} not ready after {args.seconds}s: {last}", file=sys.stderr)
    return 1


def cmd_reset(args):
    """Puts a database's `tasks` table back to the start state of a run:
    the seed of finished tasks only, vacuumed and analyzed, after a
    checkpoint. Also empties the run's Redis queues when --prefix is given."""
    seeded = int(psql(args.db, f"SELECT count(*) FROM tasks WHERE created_at < '{SEED_CUTOFF}'"))
    if seeded != SEED_TASKS:
        psql(args.db, "TRUNCATE tasks, idempotency_keys")
        psql(args.db, SEED_SQL)
    else:
        psql(args.db, f"DELETE FROM tasks WHERE created_at >= '{SEED_CUTOFF}'")
        psql(args.db, "DELETE FROM idempotency_keys")
    psql(args.db, "VACUUM (ANALYZE) tasks")
    psql(args.db, "CHECKPOINT")
    if args.prefix:
        clear_queues(args.redis_cli, args.prefix)
    return 0


def clear_queues(redis_cli, prefix):
    """Deletes every key of every queue under `prefix` (they share the hash
    tag `{q:<queue>}`, see src/keys.rs): messages left by a run whose tasks
    the next run's database no longer holds."""
    scan = subprocess.run(redis_cli.split() + ["--scan", "--pattern", f"{prefix}:{{q:*"],
                          check=True, capture_output=True, text=True, timeout=60)
    keys = scan.stdout.split()
    for start in range(0, len(keys), 500):
        subprocess.run(redis_cli.split() + ["DEL"] + keys[start:start + 500], check=True,
                       capture_output=True, timeout=30)


def cmd_clear_queues(args):
    clear_queues(args.redis_cli, args.prefix)
    return 0


def cmd_wait_idle(args):
    """Waits (at most --max-wait seconds) until the machine's CPU is less
    than --threshold busy over one second, so that a run does not start in
    the middle of someone else's build. Prints how long it waited."""
    start = time.monotonic()
    share = 1.0
    while True:
        busy0, total0 = machine_busy_seconds()
        time.sleep(1.0)
        busy1, total1 = machine_busy_seconds()
        share = (busy1 - busy0) / max(1e-9, total1 - total0)
        if share < args.threshold or time.monotonic() - start >= args.max_wait:
            break
    waited = time.monotonic() - start
    if share >= args.threshold:
        print(f"   (machine still {share:.0%} busy after {waited:.0f} s; measuring anyway)")
    elif waited > 2:
        print(f"   (waited {waited:.0f} s for the machine to be idle)")
    return 0


def cmd_startup(args):
    """Spawns the command, polls its /ready every millisecond, stops it."""
    log = open(args.log, "a", encoding="utf-8") if args.log else subprocess.DEVNULL
    start = time.monotonic()
    proc = subprocess.Popen(args.command, stdout=log, stderr=log)
    ready_ms = None
    first_answer_ms = None
    try:
        deadline = start + args.timeout
        while time.monotonic() < deadline and proc.poll() is None:
            status, _ = http_get(args.url, timeout=1.0)
            now = time.monotonic()
            if status is not None and first_answer_ms is None:
                first_answer_ms = (now - start) * 1000
            if status == 200:
                ready_ms = (now - start) * 1000
                break
            time.sleep(0.001)
        rss_kb = read_status_kb(proc.pid, "VmRSS")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if ready_ms is None:
        print(f"startup: {args.url} never became ready", file=sys.stderr)
        return 1
    record = {"kind": "startup", "ready_ms": round(ready_ms, 1),
              "listening_ms": round(first_answer_ms, 1), "idle_rss_kb": rss_kb}
    record.update(extra_fields(args.field))
    append(args.out, record)
    print(f"  {record.get('process', '')} ready in {ready_ms:.0f} ms "
          f"(answering after {first_answer_ms:.0f} ms)")
    return 0


def cmd_wrk(args):
    pids = named_pids(args.rss)
    reset_peak_rss(pids)
    hits_before = (prometheus_labelled(args.hit_metrics, "tasker_cache_requests_total",
                                       'result="hit"') if args.hit_metrics else 0.0)
    before = cpu_snapshot(pids)
    parsed, _, code, stderr = run_wrk(args.command, args.log)
    after = cpu_snapshot(pids)
    if parsed is None:
        print(f"wrk failed (exit {code}): {stderr.strip()[:500]}", file=sys.stderr)
        return 1
    record = {"kind": "wrk"}
    record.update(wrk_fields(parsed))
    record.update(peak_rss(pids))
    record["cpu"] = cpu_delta(before, after)
    record.update(extra_fields(args.field))
    if args.hit_metrics:
        hits = prometheus_labelled(args.hit_metrics, "tasker_cache_requests_total",
                                   'result="hit"') - hits_before
        record["cache_hit_share"] = round(hits / max(1, parsed["requests"]), 4)
    append(args.out, record)
    print(f"  {record['rps']:>9.0f} req/s  p50 {record['p50_ms']:.2f} ms  "
          f"p99 {record['p99_ms']:.2f} ms  errors {record['errors']}")
    return 0


def percentile(sorted_values, pct):
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, int(round(pct / 100 * len(sorted_values))) - 1))
    return sorted_values[rank]


def wrk_corrected(latencies, seconds, connections):
    """wrk's correction for coordinated omission (stats_correct in wrk 4):
    a response slower than twice the expected interval between requests of
    one connection also counts the requests that connection could not send
    meanwhile, at latencies one interval apart. Applied to pgbench's
    latencies so that its percentiles compare with wrk's."""
    if not latencies or seconds <= 0:
        return latencies
    expected = int(seconds * 1e6 / (len(latencies) / connections))
    if expected <= 0:
        return latencies
    corrected = list(latencies)
    for value in latencies:
        if value >= 2 * expected:
            m = value - expected
            while m > expected:
                corrected.append(m)
                m -= expected
    corrected.sort()
    return corrected


def cmd_pgbench(args):
    workdir = tempfile.mkdtemp(prefix="pgbench-")
    pids = named_pids(args.rss)
    try:
        argv = list(args.command) + ["-l", "--log-prefix", os.path.join(workdir, "tx")]
        before = cpu_snapshot(pids)
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        after = cpu_snapshot(pids)
        if args.log:
            with open(args.log, "a", encoding="utf-8") as handle:
                handle.write("$ " + " ".join(argv) + "\n" + proc.stdout + proc.stderr + "\n")
        match = re.search(r"^tps = ([0-9.]+)", proc.stdout, re.M)
        if proc.returncode != 0 or not match:
            print(f"pgbench failed (exit {proc.returncode}): {proc.stderr.strip()[:500]}",
                  file=sys.stderr)
            return 1
        latencies = []
        failed = 0
        for path in glob.glob(os.path.join(workdir, "tx*")):
            with open(path, encoding="ascii") as handle:
                for line in handle:
                    fields = line.split()
                    if len(fields) >= 3 and fields[2].isdigit():
                        latencies.append(int(fields[2]))
                    else:
                        failed += 1
        latencies.sort()
        processed = re.search(r"number of transactions actually processed: (\d+)", proc.stdout)
        clients = re.search(r"number of clients: (\d+)", proc.stdout)
        duration = re.search(r"duration: (\d+) s", proc.stdout)
        corrected = wrk_corrected(latencies, float(duration.group(1)) if duration else 0.0,
                                  int(clients.group(1)) if clients else 1)
        record = {
            "kind": "pgbench",
            "rps": float(match.group(1)),
            "requests": int(processed.group(1)) if processed else len(latencies),
            "p50_ms": percentile(corrected, 50) / 1000,
            "p90_ms": percentile(corrected, 90) / 1000,
            "p99_ms": percentile(corrected, 99) / 1000,
            "raw_p50_ms": percentile(latencies, 50) / 1000,
            "raw_p99_ms": percentile(latencies, 99) / 1000,
            "max_ms": (latencies[-1] / 1000) if latencies else 0.0,
            "errors": failed,
            "cpu": cpu_delta(before, after),
        }
        record.update(extra_fields(args.field))
        append(args.out, record)
        print(f"  {record['rps']:>9.0f} tx/s   p50 {record['p50_ms']:.2f} ms  "
              f"p99 {record['p99_ms']:.2f} ms")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_submit(args):
    """Submits exactly args.n tasks with wrk and submit_n.lua. wrk runs until
    its -d is over, so it is interrupted once every thread has marked itself
    done. Returns (parsed BENCH_JSON or None, seconds until all answers were
    in, error text)."""
    markers = tempfile.mkdtemp(prefix="submit-")
    argv = ["wrk", f"-t{args.threads}", f"-c{args.clients}", f"-d{args.timeout}s",
            "--timeout", "10s", "-s", args.submit_script, args.api, "--",
            str(args.n), str(args.threads), markers] + list(args.script_arg or [])
    try:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        finished_at = None
        while proc.poll() is None:
            if len(os.listdir(markers)) >= args.threads:
                finished_at = time.monotonic()
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.002)
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        if finished_at is None:
            finished_at = time.monotonic()
        if args.log:
            with open(args.log, "a", encoding="utf-8") as handle:
                handle.write("$ " + shown(argv) + "\n" + stdout + stderr + "\n")
        parsed = None
        for line in stdout.splitlines():
            if line.startswith("BENCH_JSON "):
                parsed = json.loads(line[len("BENCH_JSON "):])
        return parsed, finished_at - start, stderr
    finally:
        shutil.rmtree(markers, ignore_errors=True)


def wait_completed(metrics_url, baseline, n, deadline):
    """Polls the worker's completion counter until n more tasks finished."""
    done = 0.0
    while time.monotonic() < deadline:
        try:
            done = prometheus_sum(metrics_url, "tasker_tasks_completed_total") - baseline
        except (RuntimeError, OSError):
            pass
        if done >= n:
            return True, done
        time.sleep(0.1)
    return False, done


def task_summary(dburl):
    row = psql(dburl, (
        "SELECT count(*), count(*) FILTER (WHERE status = 'completed'), "
        "count(*) FILTER (WHERE status = 'failed'), "
        "extract(epoch FROM min(created_at)), extract(epoch FROM max(completed_at)), "
        "coalesce(extract(epoch FROM percentile_cont(0.5) WITHIN GROUP "
        "(ORDER BY started_at - created_at)), 0), "
        "coalesce(extract(epoch FROM percentile_cont(0.99) WITHIN GROUP "
        "(ORDER BY completed_at - created_at)), 0) FROM tasks "
        f"WHERE created_at >= '{SEED_CUTOFF}'"))
    total, completed, failed, first_created, last_completed, wait_p50, done_p99 = row.split("\t")
    return {
        "stored": int(total), "completed": int(completed), "failed": int(failed),
        "first_created": float(first_created or 0), "last_completed": float(last_completed or 0),
        "queue_wait_p50_ms": round(float(wait_p50) * 1000, 1),
        "submit_to_done_p99_ms": round(float(done_p99) * 1000, 1),
    }


def cmd_e2e(args):
    pids = named_pids(args.rss)
    reset_peak_rss(pids)
    baseline = prometheus_sum(args.worker_metrics, "tasker_tasks_completed_total")
    redispatched = prometheus_labelled(args.worker_metrics, "tasker_tasks_recovered_total",
                                       'reason="dispatch_lost"')
    pg_before = pg_counters(args.db) if args.pg_stats else None
    before = cpu_snapshot(pids)
    start_wall = time.time()
    start = time.monotonic()
    parsed, submit_seconds, stderr = run_submit(args)
    if parsed is None:
        print(f"wrk failed: {stderr.strip()[:500]}", file=sys.stderr)
        return 1
    finished, done = wait_completed(args.worker_metrics, baseline, args.n,
                                    start + args.timeout)
    seen = time.monotonic()
    after = cpu_snapshot(pids)
    redispatched = prometheus_labelled(args.worker_metrics, "tasker_tasks_recovered_total",
                                       'reason="dispatch_lost"') - redispatched
    pg_per_task = None
    if args.pg_stats:
        flush_pg_stats(ready_urls(args), args.pokes)
        pg_per_task = counter_delta(pg_before, pg_counters(args.db), args.n)
    summary = task_summary(args.db)
    if not finished:
        print(f"e2e: only {done:.0f} of {args.n} tasks finished within {args.timeout}s",
              file=sys.stderr)
    # The last completion as PostgreSQL stamped it (same clock as ours).
    end_to_end = (summary["last_completed"] - start_wall if finished
                  else seen - start)
    record = {
        "kind": "e2e",
        "n": args.n,
        "finished": finished,
        "seconds": round(end_to_end, 3),
        "tasks_per_s": round(args.n / end_to_end, 1) if end_to_end > 0 else 0.0,
        "submit_seconds": round(submit_seconds, 3),
        "submit_rps": round(args.n / submit_seconds, 1),
        "submit_p99_ms": parsed["p99_us"] / 1000,
        "http_errors": sum(parsed[k] for k in ("connect_errors", "read_errors",
                                                "write_errors", "status_errors", "timeouts")),
        "cpu": cpu_delta(before, after),
        "redispatched": redispatched,
    }
    record.update({k: v for k, v in summary.items()
                   if k not in ("first_created", "last_completed")})
    record["tasks_per_s_stored"] = stored_rate(summary)
    if pg_per_task is not None:
        record["pg_per_task"] = pg_per_task
    record.update(peak_rss(pids))
    record.update(extra_fields(args.field))
    append(args.out, record)
    print(f"  {args.n} tasks in {end_to_end:.2f} s = {record['tasks_per_s']:.0f} tasks/s "
          f"(submitted in {record['submit_seconds']:.2f} s; completed {summary['completed']}, "
          f"failed {summary['failed']}, stored {summary['stored']})")
    if args.ids:
        with open(args.ids, "w", encoding="ascii") as handle:
            handle.write(psql(args.db, "SELECT id FROM tasks WHERE status = 'completed' "
                                    f"AND created_at >= '{SEED_CUTOFF}'") + "\n")
    return 0 if finished else 1


def ready_urls(args):
    """The /ready URLs of the api and the worker (see flush_pg_stats)."""
    return [args.worker_metrics.rsplit("/", 1)[0] + "/ready", args.api + "/ready"]


def stored_rate(summary):
    """Tasks finished per second from the first `created_at` to the last
    `completed_at`, both stamped by PostgreSQL."""
    span = summary["last_completed"] - summary["first_created"]
    finished = summary["completed"] + summary["failed"]
    return round(finished / span, 1) if span > 0 else 0.0


# Case (j): finished tasks that reach retention.days = 1 during the run, at
# a steady rate, as yesterday's traffic at the same peak would. Their
# created_at lies before SEED_CUTOFF, so the run's own figures leave them
# out; their ids are UUIDv7 of their completion time, as the service's are.
EXPIRING_SQL = """
INSERT INTO tasks (id, task_name, task_parameters, status, task_output, queue, attempts,
                   max_attempts, request_id, run_after, dispatched_at, created_at,
                   started_at, completed_at, updated_at)
SELECT (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7'
        || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
       'sum', '{{"a": 1, "b": 2}}', 'completed', '{{"result": 3}}', 'default', 1, 3, h,
       ts, ts, timestamptz '2000-06-01' + g * interval '1 microsecond', ts, ts, ts
FROM generate_series(0, {n} - 1) AS g,
     LATERAL (SELECT md5('expiring' || g) AS h,
                     to_timestamp({anchor}) - interval '1 day'
                     + make_interval(secs => g / {rate}::float8 - {backlog}) AS ts) m
"""
# Rows the fill writes per second, for the moment its schedule starts at
# (measured: about 40,000 per second with the CHECKPOINT after it).
FILL_ROWS_PER_S = 25_000


def fill_expiring(dburl, rate, backlog, ahead):
    """Inserts finished tasks that pass retention (1 day) at `rate` per
    second: `backlog` seconds of them already past it when the schedule
    starts, and `ahead` seconds more after. The schedule starts when the
    fill is expected to be done; this waits for that moment and returns the
    count and the moment (epoch), later than planned if the fill was slow."""
    n = int(rate * (backlog + ahead))
    anchor = time.time() + 1 + n / FILL_ROWS_PER_S
    psql(dburl, EXPIRING_SQL.format(n=n, rate=rate, backlog=backlog, anchor=anchor))
    psql(dburl, "CHECKPOINT")
    late = time.time() - anchor
    if late < 0:
        time.sleep(-late)
    return n, anchor


def expiring_left(dburl):
    """Tasks of the schedule still stored, and of those, the ones past
    retention now (left behind). Both read the retention index: the
    schedule's tasks finished about a day ago, the run's own just now."""
    row = psql(dburl, (
        "SET enable_seqscan = off; SET enable_bitmapscan = off; "
        "SELECT count(*), count(*) FILTER (WHERE completed_at < now() - interval '1 day') "
        "FROM tasks WHERE status IN ('completed', 'failed', 'cancelled') "
        "AND completed_at < now() - interval '12 hours'"))
    stored, expired = row.splitlines()[-1].split("\t")
    return int(stored), int(expired)


def retention_fields(fill, anchor, at_load_end, load_end, at_drain, drained_at):
    """What retention did in case (j): deleted during the load and in all,
    per second, and what it left behind (expired but still stored)."""
    n, rate, backlog = fill
    due_at_load_end = min(n, int((load_end - anchor + backlog) * rate))
    return {
        "expiring_rate": rate,
        "expiring_filled": n,
        "expired_by_load_end": due_at_load_end,
        "deleted_during_load": n - at_load_end[0],
        "deletes_per_s_during_load": round((n - at_load_end[0]) / max(1e-6, load_end - anchor), 1),
        "left_expired_at_load_end": at_load_end[1],
        "deleted": n - at_drain[0],
        "deletes_per_s": round((n - at_drain[0]) / max(1e-6, drained_at - anchor), 1),
        "left_expired": at_drain[1],
    }


def cmd_mixed(args):
    """Submits with wrk for a fixed time while the api and a worker run,
    then waits until the worker has finished every task the api accepted
    (its tasker_tasks_submitted_total). Records wrk's figures, the rate
    from the first created_at to the last completed_at, and what reading
    the `tasks` table cost PostgreSQL per task. With --expiring RATE, first
    fills the table with tasks that pass retention during the run (case
    (j)), and records how retention kept up."""
    pids = named_pids(args.rss)
    reset_peak_rss(pids)
    fill = None
    if args.expiring:
        n, fill_at = fill_expiring(args.db, args.expiring, args.expiring_backlog,
                                   args.expiring_ahead)
        fill = (n, args.expiring, args.expiring_backlog)
    submitted0 = prometheus_sum(args.api_metrics, "tasker_tasks_submitted_total")
    completed0 = prometheus_sum(args.worker_metrics, "tasker_tasks_completed_total")
    pg0 = pg_counters(args.db)
    reltuples0 = float(psql(args.db, "SELECT reltuples FROM pg_class WHERE relname = 'tasks'"))
    cpu0 = cpu_snapshot(pids)
    start = time.monotonic()
    parsed, _, code, stderr = run_wrk(args.command, args.log)
    if parsed is None:
        print(f"wrk failed (exit {code}): {stderr.strip()[:500]}", file=sys.stderr)
        return 1
    if fill:
        load_end = time.time()
        at_load_end = expiring_left(args.db)
    # Requests in flight when wrk stopped may still be stored: let them land.
    time.sleep(0.5)
    accepted = prometheus_sum(args.api_metrics, "tasker_tasks_submitted_total") - submitted0
    finished, done = wait_completed(args.worker_metrics, completed0, accepted,
                                    time.monotonic() + args.timeout)
    drained = time.monotonic() - start
    if fill:
        retention = retention_fields(fill, fill_at, at_load_end, load_end,
                                     expiring_left(args.db), time.time())
    cpu1 = cpu_snapshot(pids)
    flush_pg_stats(ready_urls(args), args.pokes)
    pg1 = pg_counters(args.db)
    summary = task_summary(args.db)
    if not finished:
        print(f"mixed: only {done:.0f} of {accepted:.0f} accepted tasks finished "
              f"within {args.timeout}s", file=sys.stderr)
    tasks = max(1, summary["stored"])
    record = {"kind": "mixed", "finished": finished, "accepted": int(accepted),
              "drain_seconds": round(drained, 3), "reltuples_before": reltuples0,
              "tasks_per_s": stored_rate(summary),
              "pg_per_task": counter_delta(pg0, pg1, tasks),
              "tasks_seq_tup_read": pg1["tasks_seq_tup_read"] - pg0["tasks_seq_tup_read"],
              "tasks_seq_scans": pg1["tasks_seq_scans"] - pg0["tasks_seq_scans"],
              "tasks_analyzes": pg1["tasks_analyzes"] - pg0["tasks_analyzes"],
              "cpu": cpu_delta(cpu0, cpu1)}
    record.update(wrk_fields(parsed))
    record.update({k: v for k, v in summary.items()
                   if k not in ("first_created", "last_completed")})
    if fill:
        record.update(retention)
    record.update(peak_rss(pids))
    record.update(extra_fields(args.field))
    append(args.out, record)
    print(f"  submit {record['rps']:.0f} req/s (errors {record['errors']}); "
          f"{summary['stored']} tasks, end to end {record['tasks_per_s']:.0f} tasks/s; "
          f"{record['tasks_seq_tup_read'] / tasks:.1f} rows read by sequential scans "
          f"per task ({record['tasks_seq_scans']} scans)")
    if fill:
        print(f"  retention: {retention['deleted_during_load']} of "
              f"{retention['expired_by_load_end']} expired deleted during the load "
              f"({retention['deletes_per_s_during_load']:.0f}/s), "
              f"{retention['left_expired']} expired left at the end")
    return 0 if finished else 1


def cmd_roundtrip(args):
    """One client, one task at a time: POST /run-task, then
    GET /tasks/{id}?wait=… until it answers finished, on one kept-alive
    connection. Records the percentiles of submit → result (case (k))."""
    parts = urllib.parse.urlsplit(args.api)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    body = json.dumps({"task_name": "sum", "a": 1, "b": 2})
    headers = {"Content-Type": "application/json"}
    # The floor under every round trip: two requests the api answers at
    # once (this client's own time, HTTP, the api's routing).
    floor = []
    for _ in range(500):
        start = time.perf_counter()
        for _ in range(2):
            conn.request("GET", "/health")
            conn.getresponse().read()
        floor.append((time.perf_counter() - start) * 1000)
    floor.sort()
    took, failures = [], 0
    deadline = time.monotonic() + args.timeout
    for i in range(args.warmup + args.n):
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        conn.request("POST", "/run-task", body, headers)
        response = conn.getresponse()
        answer = json.loads(response.read() or b"{}")
        task = answer.get("task_uuid")
        status = None
        while task and status not in ("completed", "failed", "cancelled"):
            conn.request("GET", f"/tasks/{task}?wait={args.wait}")
            response = conn.getresponse()
            status = json.loads(response.read() or b"{}").get("status")
            if response.status != 200:
                break
        elapsed = time.perf_counter() - start
        if status != "completed":
            failures += 1
        elif i >= args.warmup:
            took.append(elapsed * 1000)
    conn.close()
    took.sort()
    record = {"kind": "roundtrip", "n": len(took), "failures": failures,
              "p50_ms": round(percentile(took, 50), 3), "p90_ms": round(percentile(took, 90), 3),
              "p99_ms": round(percentile(took, 99), 3),
              "max_ms": round(took[-1], 3) if took else 0.0,
              "floor_p50_ms": round(percentile(floor, 50), 3)}
    record.update(extra_fields(args.field))
    append(args.out, record)
    print(f"  submit → result, one client: p50 {record['p50_ms']:.2f} ms, "
          f"p99 {record['p99_ms']:.2f} ms over {len(took)} tasks ({failures} not completed); "
          f"two GET /health take {record['floor_p50_ms']:.2f} ms")
    return 0 if took and not failures else 1


def pg_counters(dburl):
    row = psql(dburl, (
        "SELECT d.xact_commit, d.xact_rollback, d.tup_inserted, d.tup_updated, "
        "d.tup_returned, d.tup_fetched, t.n_tup_ins, t.n_tup_upd, t.n_tup_hot_upd, "
        "coalesce(t.idx_scan, 0), t.seq_scan, t.seq_tup_read, "
        "t.analyze_count + t.autoanalyze_count "
        "FROM pg_stat_database d, pg_stat_user_tables t "
        "WHERE d.datname = current_database() AND t.relname = 'tasks'"))
    names = ["xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_returned",
             "tup_fetched", "tasks_inserts", "tasks_updates", "tasks_hot_updates",
             "tasks_index_scans", "tasks_seq_scans", "tasks_seq_tup_read", "tasks_analyzes"]
    return dict(zip(names, (int(v) for v in row.split("\t")), strict=True))


def counter_delta(before, after, per):
    delta = {}
    for key in sorted(set(before) | set(after)):
        value = after.get(key, 0) - before.get(key, 0)
        if value:
            delta[key] = round(value / per, 3)
    return delta


MONITOR_LINE = re.compile(r'^(\d+\.\d+) \[\d+ ([^\]]+)\] "([^"]+)"(.*)$')


def flush_pg_stats(urls, pokes):
    """PostgreSQL publishes a backend's counters when it goes idle, at most
    once a second (else 10 s later). After a second of quiet, a few cheap
    /ready calls (SELECT 1) on every pool connection make each backend
    publish what it has pending."""
    time.sleep(1.2)
    for url in urls:
        for _ in range(pokes):
            http_get(url, timeout=5.0)
    time.sleep(0.3)


def monitor_counts(path, prefix, windows):
    """Commands per window sent by the connections that touched `prefix`
    keys (that is, by this benchmark's api and worker), from MONITOR output."""
    lines = []
    ours = set()
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            match = MONITOR_LINE.match(line)
            if not match or match.group(2) == "lua":
                continue
            stamp, client, command, rest = match.groups()
            if f'"{prefix}:' in rest:
                ours.add(client)
            lines.append((float(stamp), client, command.lower()))
    counts = [defaultdict(int) for _ in windows]
    for stamp, client, command in lines:
        if client not in ours:
            continue
        for index, (begin, end) in enumerate(windows):
            if begin <= stamp <= end:
                counts[index][command] += 1
    return counts, len(ours)


class Monitor:
    """Redis MONITOR into a temporary file, for the life of a `with` block."""

    def __init__(self, redis_cli):
        self.redis_cli = redis_cli.split()
        self.file = None
        self.proc = None

    def __enter__(self):
        self.file = tempfile.NamedTemporaryFile(prefix="monitor-", suffix=".txt", delete=False)
        self.proc = subprocess.Popen(self.redis_cli + ["MONITOR"], stdout=self.file,
                                     stderr=subprocess.DEVNULL)
        time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        time.sleep(0.3)
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.file.close()
        return False

    def counts(self, prefix, window):
        try:
            (counts,), clients = monitor_counts(self.file.name, prefix, [window])
        finally:
            os.unlink(self.file.name)
        return counts, clients


def per_task(counts, n):
    return {k: round(v / n, 3) for k, v in sorted(counts.items())}


def per_task_ms(delta, n):
    return {k: round(v * 1000 / n, 3) for k, v in delta.items() if k != "machine_busy_share"}


def cmd_account_submit(args):
    """First half of the cost accounting: N tasks submitted to the api while
    no worker runs. Writes its figures to --state for account-run."""
    pids = named_pids(args.rss)
    n = args.n
    with Monitor(args.redis_cli) as monitor:
        flush_pg_stats([args.api + "/ready"], args.pokes)
        pg0 = pg_counters(args.db)
        cpu0 = cpu_snapshot(pids)
        t0 = time.time()
        parsed, submit_seconds, stderr = run_submit(args)
        t1 = time.time()
        cpu1 = cpu_snapshot(pids)
        flush_pg_stats([args.api + "/ready"], args.pokes)
        pg1 = pg_counters(args.db)
    redis_counts, clients = monitor.counts(args.prefix, (t0, t1))
    if parsed is None:
        print(f"wrk failed: {stderr.strip()[:500]}", file=sys.stderr)
        return 1
    state = {
        "n": n,
        "submit_seconds": round(submit_seconds, 3),
        "pg_submit": counter_delta(pg0, pg1, n),
        "redis_submit": per_task(redis_counts, n),
        "redis_clients_submit": clients,
        "cpu_ms_submit": per_task_ms(cpu_delta(cpu0, cpu1), n),
    }
    with open(args.state, "w", encoding="utf-8") as handle:
        json.dump(state, handle)
    print(f"  per task, submit: PostgreSQL {state['pg_submit']}")
    print(f"                    Redis {state['redis_submit']}")
    return 0


def cmd_account_run(args):
    """Second half: starts a worker (the command given) on the N pending
    tasks and measures until it has finished them all. The worker keeps
    running; its pid goes to --pid-file."""
    with open(args.state, encoding="utf-8") as handle:
        state = json.load(handle)
    n = state["n"]
    pids = named_pids(args.rss)
    with Monitor(args.redis_cli) as monitor:
        pg0 = pg_counters(args.db)
        cpu0 = cpu_snapshot(pids)
        t0 = time.time()
        with open(args.worker_log, "a", encoding="utf-8") as log:
            worker = subprocess.Popen(args.command, stdout=log, stderr=log)
        with open(args.pid_file, "w", encoding="ascii") as handle:
            handle.write(f"{worker.pid}\n")
        pids["worker"] = worker.pid
        cpu0["worker"] = 0.0
        finished, _ = wait_completed(args.worker_metrics, 0.0, n,
                                     time.monotonic() + args.timeout)
        t1 = time.time()
        cpu1 = cpu_snapshot(pids)
        flush_pg_stats([args.worker_metrics.rsplit("/", 1)[0] + "/ready", args.api + "/ready"],
                       args.pokes)
        pg1 = pg_counters(args.db)
    redis_counts, clients = monitor.counts(args.prefix, (t0, t1))
    record = {"kind": "account", "finished": finished, "run_seconds": round(t1 - t0, 3),
              "pg_run": counter_delta(pg0, pg1, n), "redis_run": per_task(redis_counts, n),
              "redis_clients_run": clients,
              "cpu_ms_run": per_task_ms(cpu_delta(cpu0, cpu1), n)}
    record.update(state)
    record.update(extra_fields(args.field))
    append(args.out, record)
    print(f"  per task, run:    PostgreSQL {record['pg_run']}")
    print(f"                    Redis {record['redis_run']}")
    return 0 if finished else 1


SYSCALL_LINE = re.compile(
    r"^(?:\[pid\s+)?\d*\]?\s*(\w+)\((\d+)<(?:TCP|TCPv6):\[([^\]]*)\]>")
WRITE_CALLS = {"write", "writev", "sendto", "sendmsg", "sendmmsg"}
READ_CALLS = {"read", "readv", "recvfrom", "recvmsg", "recvmmsg"}


def peer_kind(endpoints, http_ports):
    """'postgres', 'redis' or 'http' for strace's `local->remote` text."""
    local, _, remote = endpoints.partition("->")
    local_port = local.rsplit(":", 1)[-1]
    remote_port = remote.rsplit(":", 1)[-1]
    if remote_port == "5432":
        return "postgres"
    if remote_port == "6379":
        return "redis"
    if local_port in http_ports:
        return "http"
    return "other"


def cmd_sockets(args):
    """Counts an strace -f -yy log's socket writes and reads by peer, per task."""
    counts = defaultdict(int)
    http_ports = set(args.http_port or [])
    with open(args.trace, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            match = SYSCALL_LINE.match(line.strip())
            if not match:
                continue
            call, _, endpoints = match.groups()
            if call in WRITE_CALLS:
                direction = "writes"
            elif call in READ_CALLS:
                if "EAGAIN" in line:
                    direction = "reads_would_block"
                else:
                    direction = "reads"
            else:
                continue
            counts[(peer_kind(endpoints, http_ports), direction)] += 1
    record = {"kind": "sockets", "n": args.n,
              "per_task": {f"{peer}_{direction}": round(value / args.n, 3)
                           for (peer, direction), value in sorted(counts.items())}}
    record.update(extra_fields(args.field))
    append(args.out, record)
    print(json.dumps(record, indent=1, sort_keys=True))
    return 0


PERF_LINE = re.compile(r"^\s*(.+?)\s+(\d+)\s+([0-9a-f]+)\s+(.*) \((.*)\)\s*$")


def symbol_area(symbol, dso):
    """Coarse owner of a sampled function: the kernel, libc, or a Rust crate."""
    if dso.startswith("[kernel"):
        return "kernel (syscalls, TCP, scheduling)"
    if "libc.so" in dso or "ld-linux" in dso:
        return "libc (malloc/free, memcpy)"
    if symbol.startswith("[unknown]") or symbol.startswith("0x"):
        return "unknown"
    text = symbol.lstrip("<&*")
    if text.startswith("dyn "):
        text = text[4:]
    crate = re.split(r"::|<| ", text, maxsplit=1)[0]
    return crate or "unknown"


def cmd_perf_summary(args):
    """Leaf-function samples of a `perf record -a` file: share of each
    process, and for the named processes, by crate and by function."""
    pids = named_pids(args.pid)
    by_pid_name = {pid: name for name, pid in pids.items()}
    groups = list(pids) + list(args.comm or [])
    proc = subprocess.run(["perf", "script", "-i", args.data, "-F", "pid,comm,ip,sym,dso", "-G"],
                          capture_output=True, text=True, check=False)
    owners = defaultdict(int)
    areas = {name: defaultdict(int) for name in groups}
    symbols = {name: defaultdict(int) for name in groups}
    total = 0
    for line in proc.stdout.splitlines():
        match = PERF_LINE.match(line)
        if not match:
            continue
        comm, pid, _, symbol, dso = match.groups()
        total += 1
        pid = int(pid)
        if pid in by_pid_name:
            owner = by_pid_name[pid]
            areas[owner][symbol_area(symbol, dso)] += 1
            symbols[owner][symbol.split("(")[0][:110]] += 1
        elif comm in (args.comm or []):
            owner = comm
            areas[owner][symbol_area(symbol, dso)] += 1
            symbols[owner][symbol.split("(")[0][:110]] += 1
        elif comm in ("swapper",):
            owner = "idle"
        elif comm == "postgres":
            owner = "postgres"
        elif comm.startswith("redis-server") or comm.startswith("redis-rdb") or comm == "io_thd_1":
            owner = "redis"
        elif comm == "wrk":
            owner = "wrk (load generator)"
        else:
            owner = "other: " + comm
        owners[owner] += 1
    out = []
    out.append(f"Samples: {total} (all CPUs). Share of samples by process:\n")
    out.append("| process | share |")
    out.append("|---|---|")
    shown = 0.0
    for owner, count in sorted(owners.items(), key=lambda kv: -kv[1]):
        share = count / max(1, total)
        if share >= 0.005:
            out.append(f"| {owner} | {share:.1%} |")
            shown += share
    out.append(f"| everything below 0.5% | {1 - shown:.1%} |")
    for name in groups:
        count = owners.get(name, 0)
        if not count:
            continue
        out.append(f"\n{name}: {count} samples; by owner of the sampled function:\n")
        out.append("| area | share of the process |")
        out.append("|---|---|")
        for area, value in sorted(areas[name].items(), key=lambda kv: -kv[1])[:args.top]:
            out.append(f"| {area} | {value / count:.1%} |")
        out.append(f"\n{name}: top functions:\n")
        out.append("| function | share of the process |")
        out.append("|---|---|")
        for symbol, value in sorted(symbols[name].items(), key=lambda kv: -kv[1])[:args.top]:
            out.append(f"| `{symbol}` | {value / count:.1%} |")
    text = "\n".join(out) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)
    print(text)
    return 0


def cmd_metric(args):
    print(prometheus_sum(args.url, args.name))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command_name", required=True)

    p = sub.add_parser("ports")
    p.add_argument("count", type=int)
    p.set_defaults(func=cmd_ports)

    p = sub.add_parser("wait-ready")
    p.add_argument("url")
    p.add_argument("seconds", type=float)
    p.set_defaults(func=cmd_wait_ready)

    p = sub.add_parser("sockets")
    p.add_argument("--out", required=True)
    p.add_argument("--field", action="append")
    p.add_argument("--trace", required=True, help="strace -f -yy output")
    p.add_argument("--n", type=int, required=True, help="tasks the trace covers")
    p.add_argument("--http-port", action="append", help="the process's own HTTP port")
    p.set_defaults(func=cmd_sockets)

    p = sub.add_parser("clear-queues")
    p.add_argument("--prefix", required=True)
    p.add_argument("--redis-cli", default="redis-cli")
    p.set_defaults(func=cmd_clear_queues)

    p = sub.add_parser("reset")
    p.add_argument("--db", required=True)
    p.add_argument("--prefix")
    p.add_argument("--redis-cli", default="redis-cli")
    p.set_defaults(func=cmd_reset)

    p = sub.add_parser("wait-idle")
    p.add_argument("--threshold", type=float, default=0.15)
    p.add_argument("--max-wait", type=float, default=30)
    p.set_defaults(func=cmd_wait_idle)

    p = sub.add_parser("perf-summary")
    p.add_argument("--data", required=True)
    p.add_argument("--pid", action="append", help="name=pid of a process to break down")
    p.add_argument("--comm", action="append", help="break down every process of this name too")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--out")
    p.set_defaults(func=cmd_perf_summary)

    p = sub.add_parser("metric")
    p.add_argument("url")
    p.add_argument("name")
    p.set_defaults(func=cmd_metric)

    def common(p):
        p.add_argument("--out", required=True, help="results file (JSON lines)")
        p.add_argument("--log", help="append the tool's raw output here")
        p.add_argument("--field", action="append", help="key=value added to the record")
        p.add_argument("--rss", action="append", help="name=pid whose peak RSS to record")

    p = sub.add_parser("startup")
    common(p)
    p.add_argument("--url", required=True)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("command", nargs="+")
    p.set_defaults(func=cmd_startup)

    p = sub.add_parser("wrk")
    common(p)
    p.add_argument("--hit-metrics", help="API /metrics URL: record cache hits after the run")
    p.add_argument("command", nargs="+")
    p.set_defaults(func=cmd_wrk)

    p = sub.add_parser("mixed")
    common(p)
    p.add_argument("--api", required=True)
    p.add_argument("--api-metrics", required=True)
    p.add_argument("--worker-metrics", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--timeout", type=int, default=300,
                   help="seconds to wait, after wrk, for the accepted tasks to finish")
    p.add_argument("--pokes", type=int, default=25)
    p.add_argument("--expiring", type=float,
                   help="case (j): finished tasks reaching retention per second")
    p.add_argument("--expiring-backlog", type=float, default=0,
                   help="seconds of them already past retention at the start")
    p.add_argument("--expiring-ahead", type=float, default=60,
                   help="seconds of them still to expire after the start")
    p.add_argument("command", nargs="+")
    p.set_defaults(func=cmd_mixed)

    p = sub.add_parser("roundtrip")
    common(p)
    p.add_argument("--api", required=True)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--wait", type=int, default=5, help="the wait= of each read, seconds")
    p.add_argument("--timeout", type=int, default=120)
    p.set_defaults(func=cmd_roundtrip)

    p = sub.add_parser("pgbench")
    common(p)
    p.add_argument("command", nargs="+")
    p.set_defaults(func=cmd_pgbench)

    p = sub.add_parser("account-run")
    common(p)
    p.add_argument("--state", required=True)
    p.add_argument("--api", required=True)
    p.add_argument("--worker-metrics", required=True)
    p.add_argument("--worker-log", required=True)
    p.add_argument("--pid-file", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--redis-cli", default="redis-cli")
    p.add_argument("--timeout", type=int, default=300)
    p.add_argument("--pokes", type=int, default=25)
    p.add_argument("command", nargs="+")
    p.set_defaults(func=cmd_account_run)

    for name, func in (("e2e", cmd_e2e), ("account-submit", cmd_account_submit)):
        p = sub.add_parser(name)
        common(p)
        p.add_argument("--n", type=int, required=True)
        p.add_argument("--clients", type=int, default=32)
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--api", required=True)
        p.add_argument("--worker-metrics", required=True)
        p.add_argument("--db", required=True)
        p.add_argument("--submit-script", required=True)
        p.add_argument("--timeout", type=int, default=300)
        p.add_argument("--ids", help="write the completed task ids here")
        p.add_argument("--redis-cli", default="redis-cli")
        p.add_argument("--prefix", help="the run's Redis key prefix (account-submit)")
        p.add_argument("--state", help="where account-submit leaves its figures")
        p.add_argument("--pokes", type=int, default=25,
                       help="/ready calls per process to publish PostgreSQL counters")
        p.add_argument("--script-arg", action="append",
                       help="passed on to the submit script (batch=B, token=T)")
        p.add_argument("--pg-stats", action="store_true",
                       help="e2e: also record the PostgreSQL counters per task")
        p.set_defaults(func=func)

    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
