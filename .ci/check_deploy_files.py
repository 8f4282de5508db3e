#!/usr/bin/env python3
"""Static checks of the deployment files that no cluster or Docker engine is
needed for. Run from the repository root:

    python3 .ci/check_deploy_files.py

- docker-compose.yml: the services, their healthchecks and start-up order,
  workers without a fixed host port (so `--scale worker=N` works), the
  observability profile, and the files it mounts;
- deploy/prometheus/prometheus.yml: scrapes the API and every worker replica;
- Dockerfile: multi-stage, pinned base images (no `latest`), a numeric
  non-root USER, the entrypoint, migrations and assets in the build stage;
- the Grafana dashboard: valid JSON, a datasource variable, PromQL that parses
  and uses only the metrics Tasker exports; the chart's copy byte-identical;
- charts/tasker/README.md documents every value of values.yaml (worker pools
  as `workers` plus `workers.<name>.<key>` rows, keys the schema allows).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_crds import parse_promql  # noqa: E402  (same directory)

ROOT = Path.cwd()
ERRORS: list[str] = []

# The metric names Tasker exposes (src/telemetry/metrics.rs), plus Prometheus'
# own `up`. The dashboard must use these exact names.
METRICS = {
    "tasker_tasks_submitted_total", "tasker_tasks_completed_total",
    "tasker_task_duration_seconds", "tasker_task_queue_wait_seconds",
    "tasker_task_retries_total", "tasker_task_stale_results_total",
    "tasker_tasks_recovered_total", "tasker_cache_requests_total",
    "tasker_http_requests_total", "tasker_http_request_duration_seconds",
    "tasker_queue_depth", "tasker_queue_oldest_age_seconds",
    "tasker_db_pool_connections", "tasker_redis_pool_connections",
    "up",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "irate",
    "histogram_quantile", "deriv", "vector", "or", "and", "unless", "on", "le",
}


def fail(where: str, message: str) -> None:
    ERRORS.append(f"{where}: {message}")


def load_yaml(path: str):
    try:
        return yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        fail(path, f"cannot be read as YAML: {err}")
        return None


def check_compose() -> None:
    where = "docker-compose.yml"
    compose = load_yaml(where)
    if not isinstance(compose, dict):
        return
    services = compose.get("services") or {}
    for name in ("postgres", "redis", "migrate", "api", "worker", "prometheus", "grafana"):
        if name not in services:
            fail(where, f"service {name!r} is missing")
    for name in ("postgres", "redis", "api", "worker"):
        test = ((services.get(name) or {}).get("healthcheck") or {}).get("test")
        if not test:
            fail(where, f"service {name!r} has no healthcheck")
    # The API checks itself on its operations port (api.ops_listen).
    for name, port in (("api", 8002), ("worker", 8001)):
        test = ((services.get(name) or {}).get("healthcheck") or {}).get("test") or []
        if test[:3] != ["CMD", "/usr/local/bin/tasker", "probe"] or f":{port}/ready" not in " ".join(test):
            fail(where, f"service {name!r} must check itself with `tasker probe http://127.0.0.1:{port}/ready`")
    redis_cmd = " ".join(map(str, (services.get("redis") or {}).get("command") or []))
    for flag in ("--maxmemory-policy noeviction", "--appendonly yes"):
        if flag not in redis_cmd:
            fail(where, f"redis must run with {flag}")
    migrate = services.get("migrate") or {}
    if migrate.get("command") != ["migrate"]:
        fail(where, "migrate must run `tasker migrate`")
    if (migrate.get("depends_on") or {}).get("postgres", {}).get("condition") != "service_healthy":
        fail(where, "migrate must wait for postgres to be healthy")
    for name in ("api", "worker"):
        deps = (services.get(name) or {}).get("depends_on") or {}
        if not isinstance(deps, dict) or deps.get("migrate", {}).get("condition") != "service_completed_successfully":
            fail(where, f"{name} must depend on migrate with condition service_completed_successfully")
        if not isinstance(deps, dict) or deps.get("redis", {}).get("condition") != "service_healthy":
            fail(where, f"{name} must depend on redis being healthy")
        env = (services.get(name) or {}).get("environment") or {}
        for var in ("TASKER_DATABASE__URL", "TASKER_REDIS__URL", "TASKER_LLM__API_KEY"):
            if var not in env:
                fail(where, f"{name} does not set {var}")
    worker = services.get("worker") or {}
    if worker.get("ports"):
        fail(where, "worker must publish no host port, or `--scale worker=N` fails")
    if worker.get("container_name"):
        fail(where, "worker must not set container_name, or `--scale worker=N` fails")
    for name in ("prometheus", "grafana"):
        if "observability" not in ((services.get(name) or {}).get("profiles") or []):
            fail(where, f"{name} must be in the observability profile")
    for name, svc in services.items():
        image = (svc or {}).get("image", "")
        if image.endswith(":latest") or (image and ":" not in image.split("/")[-1]):
            fail(where, f"service {name} image {image!r} is not pinned to a version")
        for volume in (svc or {}).get("volumes") or []:
            source = str(volume).split(":")[0]
            if source.startswith("./") and not (ROOT / source).exists():
                fail(where, f"service {name} mounts {source}, which does not exist")


def check_prometheus() -> None:
    where = "deploy/prometheus/prometheus.yml"
    config = load_yaml(where)
    if not isinstance(config, dict):
        return
    targets = set()
    for job in config.get("scrape_configs") or []:
        for sd in job.get("dns_sd_configs") or []:
            for name in sd.get("names") or []:
                targets.add((name, sd.get("port"), sd.get("type", "SRV")))
        for sc in job.get("static_configs") or []:
            for target in sc.get("targets") or []:
                host, _, port = target.partition(":")
                targets.add((host, int(port or 0), "static"))
    if ("worker", 8001, "A") not in targets:
        fail(where, "workers must be discovered with dns_sd_configs names [worker], type A, port 8001")
    if not any(name == "api" and port == 8002 for name, port, _ in targets):
        fail(where, "the API's operations port (api:8002, where /metrics is) is not scraped")


def check_grafana_provisioning() -> None:
    ds = load_yaml("deploy/grafana/provisioning/datasources/prometheus.yml") or {}
    if not any(d.get("type") == "prometheus" for d in ds.get("datasources") or []):
        fail("deploy/grafana/provisioning/datasources", "no Prometheus datasource")
    dash = load_yaml("deploy/grafana/provisioning/dashboards/tasker.yml") or {}
    if not any(p.get("type") == "file" and (p.get("options") or {}).get("path") for p in dash.get("providers") or []):
        fail("deploy/grafana/provisioning/dashboards", "no file dashboard provider")


def check_dockerfile() -> None:
    where = "Dockerfile"
    try:
        text = (ROOT / where).read_text(encoding="utf-8")
    except OSError as err:
        fail(where, str(err))
        return
    # Join continuation lines, drop comments.
    logical = re.sub(r"\\\n", " ", text)
    lines = [l.strip() for l in logical.splitlines() if l.strip() and not l.strip().startswith("#")]
    args = {}
    froms = []
    for line in lines:
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            args.setdefault(key.strip(), value.strip().strip('"'))
        if instr == "FROM":
            image = rest.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
            froms.append(image)
    if len(froms) < 2:
        fail(where, "must be multi-stage (a build stage and a runtime stage)")
    for image in froms:
        name = image.split("@")[0]
        if "@" not in image and (name.endswith(":latest") or ":" not in name.split("/")[-1]):
            fail(where, f"base image {image!r} must be pinned to a version tag or digest")
    if froms and not froms[0].startswith("rust:"):
        fail(where, f"the build stage should use the official rust image, not {froms[0]!r}")
    users = [l.split(None, 1)[1] for l in lines if l.upper().startswith("USER ")]
    if not users:
        fail(where, "the runtime stage sets no USER")
    elif not re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", users[-1]):
        fail(where, f"USER {users[-1]!r} must be numeric and non-root (UID:GID)")
    joined = "\n".join(lines)
    for needle, why in (
        ('ENTRYPOINT ["/usr/local/bin/tasker"]', "the entrypoint is the tasker binary"),
        ('CMD ["api"]', "the default command is api"),
        ("COPY migrations", "migrations are embedded at compile time, so the build stage needs them"),
        ("COPY assets", "the docs page's script (assets/scalar) is embedded at compile time"),
        ("--locked", "the build must use Cargo.lock (--locked)"),
        ("EXPOSE 8000 8001 8002", "the API, worker and API operations ports are exposed"),
        ("org.opencontainers.image.", "OCI labels"),
    ):
        if needle not in joined:
            fail(where, f"missing {needle!r}: {why}")
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8") if (ROOT / ".dockerignore").exists() else ""
    for entry in ("target", ".git"):
        if not re.search(rf"^/?{re.escape(entry)}/?$", ignore, flags=re.M):
            fail(".dockerignore", f"must exclude {entry}/")


def check_dashboard() -> None:
    path = "deploy/grafana/dashboards/tasker.json"
    copy = "charts/tasker/dashboards/tasker.json"
    try:
        raw = (ROOT / path).read_bytes()
        dashboard = json.loads(raw)
    except (OSError, json.JSONDecodeError) as err:
        fail(path, f"not a readable JSON dashboard: {err}")
        return
    if (ROOT / copy).read_bytes() != raw:
        fail(copy, f"differs from {path}; copy it: cp {path} {copy}")
    variables = {v.get("name"): v for v in (dashboard.get("templating") or {}).get("list", [])}
    if (variables.get("datasource") or {}).get("type") != "datasource":
        fail(path, "needs a `datasource` variable of type datasource")
    used = set()
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            continue
        title = panel.get("title")
        if (panel.get("datasource") or {}).get("uid") != "${datasource}":
            fail(path, f"panel {title!r} must use the ${{datasource}} variable")
        for target in panel.get("targets", []):
            expr = target.get("expr", "")
            error = parse_promql(expr)
            if error:
                fail(path, f"panel {title!r}: {error}: {expr}")
            for name in re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?=\{|\[|\)|$)", expr):
                if name.startswith("tasker_") or name == "up":
                    used.add(name)
    for name in used:
        base = name
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] in METRICS:
                base = name[: -len(suffix)]
        if base not in METRICS:
            fail(path, f"uses {name}, which Tasker does not export")
    expected = {"tasker_tasks_completed_total", "tasker_task_duration_seconds_bucket",
                "tasker_task_queue_wait_seconds_bucket", "tasker_queue_depth",
                "tasker_queue_oldest_age_seconds", "tasker_tasks_submitted_total",
                "tasker_task_retries_total", "tasker_tasks_recovered_total",
                "tasker_cache_requests_total", "tasker_http_requests_total",
                "tasker_http_request_duration_seconds_bucket", "tasker_task_stale_results_total",
                "tasker_db_pool_connections", "tasker_redis_pool_connections"}
    for name in sorted(expected - used):
        fail(path, f"has no panel on {name}")


LEAF_KEYS = {"resources", "livenessProbe", "readinessProbe", "startupProbe", "podSecurityContext",
             "securityContext", "behavior", "affinity", "task_queues", "labels", "annotations",
             "podAnnotations", "podLabels", "nodeSelector", "commonLabels", "metricLabels",
             # A map of worker pools by name: documented as `workers` and `workers.<name>.<key>`.
             "workers"}


def value_paths(values: dict, prefix: str = ""):
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in LEAF_KEYS:
            yield from value_paths(value, path + ".")
        else:
            yield path


def check_chart_readme() -> None:
    values = load_yaml("charts/tasker/values.yaml") or {}
    readme = (ROOT / "charts/tasker/README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Values\n(.*?)(?=^## |\Z)", readme, flags=re.M | re.S)
    if not section:
        fail("charts/tasker/README.md", "has no `## Values` section")
        return
    readme = section.group(1)
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M))
    paths = set(value_paths(values))
    # Rows for one pool's keys must name keys a pool may have.
    schema = json.loads((ROOT / "charts/tasker/values.schema.json").read_text(encoding="utf-8"))
    pool_keys = set(schema["definitions"]["workerPool"]["properties"])
    for path in sorted(p for p in documented if p.startswith("workers.<name>.")):
        if path.split(".")[2] not in pool_keys:
            fail("charts/tasker/README.md", f"documents {path}, but a worker pool has no key {path.split('.')[2]!r}")
        paths.add(path)
    for path in sorted(paths - documented):
        fail("charts/tasker/README.md", f"value {path} is not in the values table")
    for path in sorted(documented - paths):
        fail("charts/tasker/README.md", f"documents {path}, which values.yaml does not have")


def main() -> int:
    for check in (check_compose, check_prometheus, check_grafana_provisioning, check_dockerfile,
                  check_dashboard, check_chart_readme):
        check()
    for error in ERRORS:
        print(f"ERROR {error}", file=sys.stderr)
    if not ERRORS:
        print("  compose, prometheus, grafana provisioning, Dockerfile, dashboard, chart README: ok")
    return 1 if ERRORS else 0


if __name__ == "__main__":
    sys.exit(main())
