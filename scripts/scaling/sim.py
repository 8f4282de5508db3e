"""Plays the HPA controller against real `tasker worker` processes.

Submits a burst of `query_llm` tasks to a running `tasker api`, then every
sync period reads `tasker_queue_depth{queue=...}` from the api's /metrics,
asks `hpa.Hpa` for the desired replicas, and starts workers (each on its own
port) or SIGTERMs the newest ones, as the Deployment controller would. Logs
one line per tick, writes the ticks as CSV and, with matplotlib, a PNG.
Ends when every task is finished and the pool is back at minReplicas (or at
--timeout); then checks in PostgreSQL that every submitted task completed.
Exits 1 if any task is missing, failed, or not finished.

Started by scripts/autoscale-sim.sh, which owns the database, Redis keys,
the api and the stand-in LLM; the workers are this program's.
"""

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from hpa import Behavior, Hpa  # noqa: E402

KUBERNETES_SYNC_SECONDS = 15.0


def http_json(url, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def queue_depth(metrics_url, queue):
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("tasker_queue_depth{") and f'queue="{queue}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(db_url, sql, attempts=5):
    """Runs `sql` (on stdin: the check's statements list every task id),
    trying again for a few seconds: the server is shared, and may refuse a
    connection for a moment (max_connections)."""
    for attempt in range(attempts):
        out = subprocess.run(["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", db_url],
                             input=sql, capture_output=True, text=True)
        if out.returncode == 0:
            return out.stdout.strip()
        print(f"psql failed ({out.stderr.strip()}), trying again", file=sys.stderr, flush=True)
        time.sleep(1 + attempt)
    raise SystemExit(f"psql failed {attempts} times: {out.stderr.strip()}")


def task_body(i):
    return {"task_name": "query_llm", "prompt": f"Say hello, #{i}.", "max_tokens": 16}


def submit_burst(api, n, batch):
    ids = []
    for start in range(0, n, batch):
        tasks = [task_body(i) for i in range(start, min(n, start + batch))]
        ids += http_json(f"{api}/run-tasks", {"tasks": tasks})["task_uuids"]
    return ids


class Trickle(threading.Thread):
    """After the burst, `rate` tasks a second for `seconds` (a batch every 0.5 s),
    so that workers are scaled down while they still have work in hand."""

    def __init__(self, api, rate, seconds):
        super().__init__(daemon=True)
        self.api, self.rate, self.seconds = api, rate, seconds
        self.ids = []
        self.error = None

    def run(self):
        start, sent = time.time(), 0
        try:
            while time.time() - start < self.seconds:
                due = int((time.time() - start) * self.rate) - sent
                if due > 0:
                    tasks = [task_body(100000 + sent + i) for i in range(due)]
                    self.ids += http_json(f"{self.api}/run-tasks", {"tasks": tasks})["task_uuids"]
                    sent += due
                time.sleep(0.5)
        except Exception as e:  # reported by the check: its tasks would be missing
            self.error = e


class Pool:
    """Worker processes of one pool: started, and SIGTERMed newest first."""

    def __init__(self, args):
        self.args = args
        self.running = []  # (Popen, port)
        self.terminating = []
        self.started = 0
        self.stopped = 0
        self.exited = []  # (port, exit code) of every stopped worker

    def start(self):
        port = free_port()
        env = dict(os.environ)
        env.update({
            "TASKER_WORKER__LISTEN": f"127.0.0.1:{port}",
            "TASKER_WORKER__QUEUES": json.dumps([self.args.queue]),
            "TASKER_WORKER__CONCURRENCY": str(self.args.concurrency),
            # Ten workers with the default pool of 10 would take every
            # connection of a PostgreSQL with max_connections = 100 (see
            # docs/scaling.md); a worker running 4 tasks needs few.
            "TASKER_DATABASE__MAX_CONNECTIONS": str(self.args.db_pool),
        })
        log = open(os.path.join(self.args.run_dir, f"worker-{port}.log"), "ab")
        proc = subprocess.Popen([self.args.bin, "worker"], env=env, stdout=log, stderr=log)
        with open(os.path.join(self.args.run_dir, "worker.pids"), "a") as f:
            f.write(f"{proc.pid}\n")
        self.running.append((proc, port))
        self.started += 1

    def stop_newest(self):
        proc, port = self.running.pop()
        proc.send_signal(signal.SIGTERM)  # graceful: finish or hand back
        self.terminating.append((proc, port))
        self.stopped += 1

    def scale_to(self, n):
        while len(self.running) < n:
            self.start()
        while len(self.running) > n:
            self.stop_newest()

    def reap(self):
        """Exit codes of workers that finished shutting down since the last
        call, and of any that died unasked (replaced at the next scale_to,
        as a Deployment would; the check reports their exit code)."""
        died = [(p, port) for p, port in self.running if p.poll() is not None]
        self.running = [(p, port) for p, port in self.running if p.poll() is None]
        self.terminating += died
        done = [(p, port) for p, port in self.terminating if p.poll() is not None]
        self.terminating = [(p, port) for p, port in self.terminating if p.poll() is None]
        codes = [(port, p.returncode) for p, port in done]
        self.exited += codes
        return codes

    def stop_all(self, wait=30):
        while self.running:
            self.stop_newest()
        deadline = time.time() + wait
        for proc, _ in self.terminating:
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
        self.reap()
        return self.exited


def finished_count(db_url, queue):
    row = psql(db_url, f"""
        SELECT count(*) FILTER (WHERE status IN ('completed','failed','cancelled')),
               count(*) FILTER (WHERE status = 'completed')
        FROM tasks WHERE queue = '{queue}'""")
    done, completed = row.split("|")
    return int(done), int(completed)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bin", required=True)
    p.add_argument("--api", required=True, help="public URL of the api")
    p.add_argument("--metrics", required=True, help="the api's /metrics URL")
    p.add_argument("--llm", required=True, help="the stand-in LLM's base URL")
    p.add_argument("--db", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--out", required=True, help="PNG path (CSV beside it)")
    p.add_argument("--title", default="")
    p.add_argument("--queue", default="llm")
    p.add_argument("--tasks", type=int, default=3000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--sync", type=float, default=2.0, help="sync period, seconds")
    p.add_argument("--target", type=float, default=50, help="queue depth per replica")
    p.add_argument("--tolerance", type=float, default=0.1)
    p.add_argument("--min", dest="min_replicas", type=int, default=1)
    p.add_argument("--max", dest="max_replicas", type=int, default=10)
    p.add_argument("--window", type=float, default=None,
                   help="scale-down stabilisation window, seconds (default 300 scaled)")
    p.add_argument("--concurrency", type=int, default=4, help="worker.concurrency")
    p.add_argument("--db-pool", type=int, default=3, help="database.max_connections of a worker")
    p.add_argument("--llm-budget", default="", help="llm.max_concurrency, for the title")
    p.add_argument("--trickle-rate", type=float, default=0,
                   help="tasks a second submitted after the burst")
    p.add_argument("--trickle-seconds", type=float, default=0)
    p.add_argument("--timeout", type=float, default=420)
    return p.parse_args()


def tick_line(row):
    return ("t={t:6.1f}s depth={depth:5.0f} current={current:2d} desired={desired:2d} "
            "terminating={terminating:2d} llm_in_flight={llm_in_flight:3d} "
            "done={done:5d} rate={rate:6.1f}/s".format(**row))


def run(args, pool, hpa):
    ticks = []
    t0 = time.time()
    pool.scale_to(args.min_replicas)
    ids = submit_burst(args.api, args.tasks, args.batch)
    print(f"submitted {len(ids)} query_llm tasks in {time.time() - t0:.1f} s", flush=True)
    trickle = Trickle(args.api, args.trickle_rate, args.trickle_seconds)
    if args.trickle_rate > 0:
        trickle.start()
    last_done, last_t = 0, 0.0
    while True:
        now = time.time() - t0
        depth = queue_depth(args.metrics, args.queue)
        current = len(pool.running)
        desired = hpa.recommend(now, depth, current)
        pool.scale_to(desired)
        replicas = len(pool.running)
        for port, code in pool.reap():
            if code != 0:
                print(f"worker on port {port} exited with {code}", flush=True)
        done, _ = finished_count(args.db, args.queue)
        llm = http_json(f"{args.llm}/stats", timeout=5)
        rate = (done - last_done) / (now - last_t) if now > last_t else 0.0
        last_done, last_t = done, now
        row = dict(t=now, depth=depth, current=current, desired=desired, replicas=replicas,
                   terminating=len(pool.terminating), llm_in_flight=llm["in_flight"],
                   done=done, rate=rate)
        ticks.append(row)
        print(tick_line(row), flush=True)
        submitted = len(ids) + len(trickle.ids)
        if (not trickle.is_alive() and done >= submitted
                and desired == args.min_replicas and current == desired):
            break
        if now > args.timeout:
            print(f"timeout after {now:.0f} s", flush=True)
            break
        time.sleep(max(0.0, args.sync - (time.time() - t0 - now)))
    if trickle.error:
        print(f"the trickle stopped: {trickle.error}", flush=True)
    return ids + trickle.ids, ticks


def check(args, ids, pool_exit_codes, pool_started):
    """Every submitted task completed exactly once: returns the problems found."""
    problems = []
    id_list = ",".join(f"'{i}'" for i in ids)
    counts = psql(args.db, f"""
        SELECT status, count(*) FROM tasks WHERE id IN ({id_list}) GROUP BY status ORDER BY 1""")
    by_status = dict(line.split("|") for line in counts.splitlines() if line)
    by_status = {k: int(v) for k, v in by_status.items()}
    found = sum(by_status.values())
    handed = int(psql(args.db, f"SELECT count(*) FROM tasks WHERE id IN ({id_list}) AND attempts > 1"))
    llm = http_json(f"{args.llm}/stats", timeout=5)
    print(f"workers started {pool_started}, exited {len(pool_exit_codes)}")
    print(f"tasks submitted {len(ids)}, found {found}, by status {by_status}")
    print(f"tasks that took more than one attempt (handed back or deferred): {handed}")
    print(f"stand-in LLM: {llm['answered']} calls answered, {llm['received']} received, "
          f"at most {llm['most_in_flight']} at once")
    if found != len(ids):
        problems.append(f"{len(ids) - found} submitted tasks are missing")
    if by_status.get("completed", 0) != len(ids):
        problems.append(f"only {by_status.get('completed', 0)} of {len(ids)} tasks completed")
    if llm["answered"] < len(ids):
        problems.append(f"{llm['answered']} LLM calls answered for {len(ids)} tasks")
    elif llm["received"] > len(ids):
        print(f"note: {llm['received'] - len(ids)} calls beyond one per task "
              "(attempts abandoned at shutdown and run again)")
    bad = [(port, code) for port, code in pool_exit_codes if code != 0]
    if bad:
        problems.append(f"workers exited non-zero: {bad}")
    return problems


def write_csv(path, ticks):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(ticks[0]))
        writer.writeheader()
        writer.writerows(ticks)


def main():
    args = parse_args()
    factor = args.sync / KUBERNETES_SYNC_SECONDS
    behavior = Behavior().scaled(factor)
    if args.window is not None:
        behavior.scale_down_window = args.window
    hpa = Hpa(args.target, args.min_replicas, args.max_replicas, behavior, args.tolerance)
    print(f"sync period {args.sync} s (Kubernetes: 15 s), so every duration of the chart's "
          f"behaviour is multiplied by {factor:.3f}: scale-down window "
          f"{behavior.scale_down_window:.0f} s, policy periods {behavior.up_period:.0f} s up, "
          f"{behavior.down_period:.0f} s down", flush=True)
    pool = Pool(args)
    exit_codes = []
    try:
        ids, ticks = run(args, pool, hpa)
    finally:
        exit_codes = pool.stop_all()
    csv_path = os.path.splitext(args.out)[0] + ".csv"
    write_csv(csv_path, ticks)
    print(f"ticks: {csv_path}")
    try:
        import plot
        plot.draw(ticks, args, args.out)
        print(f"picture: {args.out}")
    except ImportError as e:
        print(f"no picture ({e}); the ticks are in {csv_path}")
    problems = check(args, ids, exit_codes, pool.started)
    for p in problems:
        print(f"FAIL: {p}")
    if not problems:
        print("OK: every task completed, none failed, none lost")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
