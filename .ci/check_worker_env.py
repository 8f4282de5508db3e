#!/usr/bin/env python3
"""Checks that the tasker binary reads each worker Deployment's environment as
the chart means it.

Usage: check_worker_env.py TASKER_BIN RENDER TOML

For every Deployment of RENDER (`helm template …` output) that runs
`tasker worker`, runs `TASKER_BIN --config TOML config` with the container's
literal TASKER_… variables (not TASKER_CONFIG nor the *_FILE secrets, which
name files of the pod) and compares the effective worker.concurrency and
worker.queues with the values of TASKER_WORKER__CONCURRENCY and
TASKER_WORKER__QUEUES (a JSON-style list; absent: every queue, i.e. []).
A pool's variables that the binary rejects or reads differently fail here
rather than in a crash-looping pod.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import yaml


def effective_worker(output: str) -> tuple[int | None, list[str] | None, list[str]]:
    """worker.concurrency, worker.queues and every queue a task type runs on,
    from the effective configuration `tasker config` prints as TOML (where
    an empty worker.queues is already spelled out as every queue)."""
    try:
        config = tomllib.loads(output)
    except tomllib.TOMLDecodeError:
        return None, None, []
    worker = config.get("worker", {})
    every_queue = sorted(set(config.get("task_queues", {}).values()))
    return worker.get("concurrency"), worker.get("queues"), every_queue


def main() -> int:
    tasker, render, toml = sys.argv[1:4]
    errors = []
    checked = 0
    for doc in yaml.safe_load_all(open(render, encoding="utf-8")):
        if not doc or doc.get("kind") != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"].get("containers", []):
            if container.get("args") != ["worker"]:
                continue
            where = f"{render}: Deployment/{doc['metadata']['name']}"
            env = {e["name"]: e["value"] for e in container.get("env", []) or []
                   if "value" in e and e["name"].startswith("TASKER_")
                   and e["name"] != "TASKER_CONFIG" and not e["name"].endswith("_FILE")}
            if "TASKER_WORKER__CONCURRENCY" not in env:
                errors.append(f"{where}: sets no TASKER_WORKER__CONCURRENCY")
                continue
            want_concurrency = int(env["TASKER_WORKER__CONCURRENCY"])
            try:
                want_queues = json.loads(env.get("TASKER_WORKER__QUEUES", "[]"))
            except json.JSONDecodeError:
                want_queues = None  # reported below, with what the binary reads
            run = subprocess.run([tasker, "--config", toml, "config"], capture_output=True, text=True,
                                 env={"PATH": os.environ.get("PATH", ""), **env})
            if run.returncode != 0:
                errors.append(f"{where}: tasker rejects its environment {env}: {run.stderr.strip()}")
                continue
            concurrency, queues, every_queue = effective_worker(run.stdout)
            if want_queues == []:
                want_queues = every_queue
            if want_queues is None:
                errors.append(f"{where}: TASKER_WORKER__QUEUES={env['TASKER_WORKER__QUEUES']!r} is not a list of "
                              f"quoted names (figment reads bare 2024 or true as a number or a boolean); "
                              f"tasker reads {queues}")
            elif (concurrency, queues) != (want_concurrency, want_queues):
                errors.append(f"{where}: tasker reads worker.concurrency={concurrency}, worker.queues={queues} "
                              f"from {env}; the chart means {want_concurrency}, {want_queues}")
            checked += 1
    for error in errors:
        print(f"ERROR {error}", file=sys.stderr)
    print(f"  {render}: {checked} worker Deployment(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
