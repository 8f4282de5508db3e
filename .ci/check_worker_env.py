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
import re
import subprocess
import sys

import yaml


def effective_worker(output: str) -> tuple[int | None, list[str] | None]:
    """worker.concurrency and worker.queues from `tasker config` ({:#?})."""
    block = re.search(r"^    worker: WorkerConfig \{\n(.*?)^    \},?$", output, flags=re.M | re.S)
    if not block:
        return None, None
    text = block.group(1)
    concurrency = re.search(r"^        concurrency: (\d+),$", text, flags=re.M)
    queues = re.search(r"^        queues: \[(.*?)\],$", text, flags=re.M | re.S)
    return (int(concurrency.group(1)) if concurrency else None,
            re.findall(r'"((?:[^"\\]|\\.)*)"', queues.group(1)) if queues else None)


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
            concurrency, queues = effective_worker(run.stdout)
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
