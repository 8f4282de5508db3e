"""What one task costs PostgreSQL and Redis: WAL, storage, queue memory.

Against a fresh database and a running `tasker api` (no worker yet):

1. submits N tasks through POST /run-tasks (batches of 100) with no worker
   running, and reads Redis memory before and after: INFO `used_memory`
   (the whole server, so other users' keys move it too) and the sum of
   MEMORY USAGE over this run's own keys (exact);
2. starts one `tasker worker`, waits until every task is finished;
3. around each phase, reads pg_current_wal_lsn() (WAL of the whole server)
   and, with pg_waldump, adds up the records that touch this database's
   relations and the commit records of their transactions (this run alone);
4. after the run, pg_total_relation_size('tasks') and its parts.

Prints a summary and writes the figures as JSON (--out).
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from sim import free_port, http_json, psql, task_body  # noqa: E402

WALDUMP_LINE = re.compile(
    r"rmgr: (\S+)\s+len \(rec/tot\):\s+(\d+)/\s*(\d+), tx:\s+(\d+), lsn: (\S+), prev \S+, desc: (.*)")


def redis(args, *command):
    out = subprocess.run(["redis-cli", "-u", args.redis, *command],
                         check=True, capture_output=True, text=True)
    return out.stdout


def redis_memory(args):
    info = redis(args, "INFO", "memory")
    used = int(re.search(r"^used_memory:(\d+)", info, re.M).group(1))
    keys = [k for k in redis(args, "--scan", "--pattern", f"{args.prefix}:*").split() if k]
    own = sum(int(redis(args, "MEMORY", "USAGE", k, "SAMPLES", "0").strip() or 0) for k in keys)
    return {"used_memory": used, "own_keys": len(keys), "own_bytes": own}


def lsn(args):
    return psql(args.db, "SELECT pg_current_wal_lsn()")


def lsn_bytes(args, start, end):
    return int(psql(args.db, f"SELECT pg_wal_lsn_diff('{end}', '{start}')"))


def own_wal(args, start, end):
    """Bytes of WAL records between two LSNs that belong to this database."""
    oid = psql(args.db, "SELECT oid FROM pg_database WHERE datname = current_database()")
    # Named segments: without them pg_waldump reads the segment size from
    # whichever file of pg_wal it finds first, which may be a new, empty one.
    first, last = psql(args.db, f"SELECT pg_walfile_name('{start}'), pg_walfile_name('{end}')").split("|")
    out = subprocess.run(["pg_waldump", "-p", args.wal_dir, "-s", start, "-e", end, first, last],
                         capture_output=True, text=True)
    records, own_tx = [], set()
    for line in out.stdout.splitlines():
        m = WALDUMP_LINE.match(line)
        if not m:
            continue
        rmgr, rec, tot, tx, _, desc = m.groups()
        records.append((rmgr, int(rec), int(tot), tx, desc))
        if f"/{oid}/" in desc:
            own_tx.add(tx)
    total = fpi = count = 0
    by_rmgr = {}
    for rmgr, rec, tot, tx, desc in records:
        mine = f"/{oid}/" in desc or (rmgr == "Transaction" and tx in own_tx and tx != "0")
        if mine:
            total += tot
            fpi += tot - rec
            count += 1
            by_rmgr[rmgr] = by_rmgr.get(rmgr, 0) + tot
    if not records:
        raise SystemExit(f"pg_waldump read no records from {start} to {end}: {out.stderr.strip()}")
    return {"bytes": total, "full_page_image_bytes": fpi, "records": count, "by_rmgr": by_rmgr}


class WalKept:
    """A temporary physical replication slot that keeps the WAL from now on,
    so that a checkpoint (other users of the server force them) cannot
    recycle segments before pg_waldump reads them. It lives as long as the
    psql session holding it: if this program dies, psql reads end of input,
    exits, and the slot is gone."""

    def __init__(self, args):
        self.proc = subprocess.Popen(["psql", "-XAtq", "-d", args.db], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        name = f"tasker_costs_{os.getpid()}"
        self.proc.stdin.write(
            f"SELECT 1 FROM pg_create_physical_replication_slot('{name}', true, true);\n")
        self.proc.stdin.flush()
        self.proc.stdout.readline()  # the slot exists once psql answers

    def release(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def submit(args):
    ids = []
    for start in range(0, args.tasks, 100):
        n = min(100, args.tasks - start)
        if args.task == "sum":
            tasks = [{"task_name": "sum", "a": start + i, "b": 2} for i in range(n)]
        else:
            tasks = [task_body(start + i) for i in range(n)]
        ids += http_json(f"{args.api}/run-tasks", {"tasks": tasks})["task_uuids"]
    return ids


def run_worker(args):
    port = free_port()
    env = dict(os.environ, TASKER_WORKER__LISTEN=f"127.0.0.1:{port}")
    log = open(os.path.join(args.run_dir, "costs-worker.log"), "ab")
    proc = subprocess.Popen([args.bin, "worker"], env=env, stdout=log, stderr=log)
    with open(os.path.join(args.run_dir, "worker.pids"), "a") as f:
        f.write(f"{proc.pid}\n")
    deadline = time.time() + args.timeout
    try:
        while time.time() < deadline:
            left = int(psql(args.db, "SELECT count(*) FROM tasks WHERE status IN ('pending','running')"))
            if left == 0:
                return
            time.sleep(0.5)
        raise SystemExit(f"tasks still unfinished after {args.timeout} s")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def storage(args):
    psql(args.db, "ANALYZE tasks")
    row = psql(args.db, """
        SELECT pg_relation_size('tasks'), pg_indexes_size('tasks'),
               pg_total_relation_size('tasks'), pg_database_size(current_database()),
               (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'tasks'),
               (SELECT count(*) FROM tasks),
               (SELECT count(*) FROM tasks WHERE status = 'completed')""")
    heap, indexes, total, database, dead, rows, completed = map(int, row.split("|"))
    return {"heap": heap, "indexes": indexes, "total": total, "database": database,
            "dead_tuples": dead, "rows": rows, "completed": completed}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("bin", "api", "db", "redis", "prefix", "run-dir", "wal-dir", "out"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--tasks", type=int, default=10000)
    p.add_argument("--task", choices=["sum", "query_llm"], default="sum")
    p.add_argument("--timeout", type=float, default=600)
    args = p.parse_args()
    n = args.tasks

    kept = WalKept(args)
    before_db = storage(args)
    redis_before = redis_memory(args)
    lsn0 = lsn(args)
    started = time.time()
    ids = submit(args)
    submit_seconds = time.time() - started
    lsn1 = lsn(args)
    redis_queued = redis_memory(args)
    run_worker(args)
    lsn2 = lsn(args)
    redis_after = redis_memory(args)
    after_db = storage(args)

    wal_own_submit, wal_own_run = own_wal(args, lsn0, lsn1), own_wal(args, lsn1, lsn2)
    kept.release()
    result = {
        "task": args.task, "tasks": n, "submitted": len(ids), "submit_seconds": submit_seconds,
        "wal_server_submit": lsn_bytes(args, lsn0, lsn1),
        "wal_server_run": lsn_bytes(args, lsn1, lsn2),
        "wal_own_submit": wal_own_submit,
        "wal_own_run": wal_own_run,
        "redis_before": redis_before, "redis_queued": redis_queued, "redis_after": redis_after,
        "storage_before": before_db, "storage_after": after_db,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)

    per = lambda b: b / n
    ws, wr = result["wal_own_submit"], result["wal_own_run"]
    print(f"{n} {args.task} tasks (submitted in {submit_seconds:.1f} s, then run by one worker)")
    print(f"WAL of this database, submit: {per(ws['bytes']):.0f} B/task "
          f"({per(ws['full_page_image_bytes']):.0f} of it full-page images), {ws['by_rmgr']}")
    print(f"WAL of this database, run:    {per(wr['bytes']):.0f} B/task "
          f"({per(wr['full_page_image_bytes']):.0f} of it full-page images), {wr['by_rmgr']}")
    print(f"WAL of the whole server (LSN diff), submit {per(result['wal_server_submit']):.0f} "
          f"+ run {per(result['wal_server_run']):.0f} B/task")
    s = after_db
    print(f"tasks table after the run: heap {per(s['heap'] - before_db['heap']):.0f} + indexes "
          f"{per(s['indexes'] - before_db['indexes']):.0f} = "
          f"{per(s['total'] - before_db['total']):.0f} B/task "
          f"({s['rows']} rows, {s['completed']} completed, {s['dead_tuples']} dead tuples)")
    q, b, a = redis_queued, redis_before, redis_after
    print(f"Redis, queued (no worker): own keys {per(q['own_bytes'] - b['own_bytes']):.0f} B/task, "
          f"used_memory {per(q['used_memory'] - b['used_memory']):.0f} B/task (whole server)")
    print(f"Redis, after the run (queue empty, results cached): own keys "
          f"{per(a['own_bytes'] - b['own_bytes']):.0f} B/task in {a['own_keys']} keys")
    return 0 if s["completed"] == n else 1


if __name__ == "__main__":
    sys.exit(main())
