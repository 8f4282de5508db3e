#!/usr/bin/env python3
"""Checks rendered Kubernetes manifests beyond what kubernetes-validate can.

Usage: check_crds.py [--kube-version V] [--require-features a,b,...] FILE...

Each FILE is a multi-document YAML stream (`helm template …` or
`kubectl kustomize …` output; "-" reads stdin). For every object:

- built-in kinds are validated with kubernetes-validate's Python API in strict
  mode, and a kind it has no schema for fails the check instead of passing
  unseen;
- the custom resources Tasker renders (ServiceMonitor, PrometheusRule,
  ScaledObject) are checked for the fields their operators require, and their
  PromQL is parsed;
- cross-references are resolved inside the same file: Services, PDBs,
  ServiceMonitors and autoscalers must select or target something that is
  rendered, volumes must name rendered ConfigMaps/Secrets (or an existing
  Secret, reported as such) and existing keys;
- no Deployment's selector matches another Deployment's pods (worker pools
  must stay apart), no pod is covered by two PodDisruptionBudgets (eviction
  refuses such pods), and a worker autoscaler scales on the queues its
  Deployment consumes (TASKER_WORKER__QUEUES; none means every queue);
- the pod templates must keep Tasker's hardening: non-root, read-only root
  filesystem, no privilege escalation, all capabilities dropped, probes,
  resources, and a worker grace period longer than its shutdown grace;
- the operations ports (`ops` of the api, `probes` of the workers: /metrics
  and the probes) stay inside the cluster: no Ingress routes to one, and no
  Service that reaches outside the cluster (type NodePort or LoadBalancer,
  or with externalIPs) carries one.

--require-features names features that must appear in at least one FILE
(e.g. that the chart's ci/ values together turn on every optional object).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from dataclasses import dataclass, field

import yaml

try:
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError
except ImportError:  # pragma: no cover - reported at run time
    kubernetes_validate = None
    SchemaNotFoundError = Exception

try:
    import promql_parser
except ImportError:  # pragma: no cover - reported at run time
    promql_parser = None

CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
}
TOML_SECTIONS = {"database", "redis", "api", "auth", "worker", "cache", "log", "llm", "otel", "retention", "task_queues"}
FEATURES = {
    "worker-hpa": "HorizontalPodAutoscaler on the External metric tasker_queue_depth",
    "api-hpa": "HorizontalPodAutoscaler on CPU",
    "keda": "KEDA ScaledObject",
    "ingress": "Ingress",
    "existing-secret": "pods reading a Secret the manifests do not create",
    "service-monitor": "ServiceMonitor",
    "prometheus-rule": "PrometheusRule",
    "dashboard": "ConfigMap labelled grafana_dashboard: \"1\"",
    "pdb": "PodDisruptionBudget",
    "migration-job": "migration Job",
    "worker-pools": "two or more worker Deployments (pools)",
}


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)

    def fail(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")


def get(obj, *path, default=None):
    for key in path:
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        elif isinstance(obj, list) and isinstance(key, int) and key < len(obj):
            obj = obj[key]
        else:
            return default
    return obj


def ident(doc: dict) -> str:
    return f"{doc.get('kind')}/{get(doc, 'metadata', 'name')}"


def parse_promql(expr: str) -> str | None:
    """Returns an error message, or None when the expression parses."""
    if promql_parser is None:
        return "promql-parser is not installed"
    # Grafana's variables are not PromQL; give them plausible values.
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    expr = re.sub(r"\$\{?[A-Za-z_]+\}?", ".*", expr)
    try:
        promql_parser.parse(expr)
    except Exception as err:  # the parser raises ValueError and friends
        return str(err)
    return None


def selects(selector: dict | None, labels: dict | None) -> bool:
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


# --- custom resources -------------------------------------------------------

def check_service_monitor(doc, where, rep, services):
    spec = doc.get("spec") or {}
    selector = get(spec, "selector", "matchLabels")
    if not selector:
        rep.fail(where, "spec.selector.matchLabels is required")
    endpoints = spec.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        rep.fail(where, "spec.endpoints must be a non-empty list")
        return
    matched = [s for s in services if selects(selector, get(s, "metadata", "labels"))]
    if selector and not matched:
        rep.fail(where, f"spec.selector {selector} matches no rendered Service")
    for i, ep in enumerate(endpoints):
        port = ep.get("port") if isinstance(ep, dict) else None
        if not port:
            rep.fail(where, f"spec.endpoints[{i}].port (a Service port name) is required")
            continue
        for svc in matched:
            names = [p.get("name") for p in get(svc, "spec", "ports", default=[])]
            if port not in names:
                rep.fail(where, f"endpoint port {port!r} is not a port of {ident(svc)} ({names})")


def check_prometheus_rule(doc, where, rep):
    groups = get(doc, "spec", "groups")
    if not isinstance(groups, list) or not groups:
        rep.fail(where, "spec.groups must be a non-empty list")
        return
    for g, group in enumerate(groups):
        if not get(group, "name"):
            rep.fail(where, f"spec.groups[{g}].name is required")
        rules = get(group, "rules")
        if not isinstance(rules, list) or not rules:
            rep.fail(where, f"spec.groups[{g}].rules must be a non-empty list")
            continue
        for r, rule in enumerate(rules):
            at = f"spec.groups[{g}].rules[{r}]"
            if not isinstance(rule, dict):
                rep.fail(where, f"{at} is not a mapping")
                continue
            if not rule.get("alert") and not rule.get("record"):
                rep.fail(where, f"{at} needs alert (or record)")
            expr = rule.get("expr")
            if expr in (None, ""):
                rep.fail(where, f"{at}.expr is required")
                continue
            error = parse_promql(str(expr))
            if error:
                rep.fail(where, f"{at} ({rule.get('alert') or rule.get('record')}) expr does not parse: {error}")
            if rule.get("alert") and rule.get("for") and not re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+", str(rule["for"])):
                rep.fail(where, f"{at}.for is not a duration: {rule['for']!r}")


def check_scaled_object(doc, where, rep):
    spec = doc.get("spec") or {}
    if not get(spec, "scaleTargetRef", "name"):
        rep.fail(where, "spec.scaleTargetRef.name is required")
    triggers = spec.get("triggers")
    if not isinstance(triggers, list) or not triggers:
        rep.fail(where, "spec.triggers must be a non-empty list")
        return
    lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
        rep.fail(where, f"minReplicaCount {lo!r} / maxReplicaCount {hi!r} are not 0 <= min <= max")
    for t, trig in enumerate(triggers):
        at = f"spec.triggers[{t}]"
        if not get(trig, "type"):
            rep.fail(where, f"{at}.type is required")
        meta = get(trig, "metadata") or {}
        if get(trig, "type") == "prometheus":
            for key in ("serverAddress", "query", "threshold"):
                if not meta.get(key):
                    rep.fail(where, f"{at}.metadata.{key} is required")
            for key, value in meta.items():
                if not isinstance(value, str):
                    rep.fail(where, f"{at}.metadata.{key} must be a string (KEDA metadata is map[string]string)")
            if meta.get("serverAddress") and not re.match(r"^https?://", meta["serverAddress"]):
                rep.fail(where, f"{at}.metadata.serverAddress is not an http(s) URL")
            if meta.get("query"):
                error = parse_promql(meta["query"])
                if error:
                    rep.fail(where, f"{at}.metadata.query does not parse: {error}")


# --- built-in kinds ---------------------------------------------------------

def pod_spec(doc):
    if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return get(doc, "spec", "template", "spec"), get(doc, "spec", "template", "metadata", "labels") or {}
    return None, None


def check_pod(doc, where, rep, by_kind, features):
    spec, _ = pod_spec(doc)
    if spec is None:
        return
    psc = spec.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        rep.fail(where, "pod securityContext.runAsNonRoot must be true")
    if get(psc, "seccompProfile", "type") != "RuntimeDefault":
        rep.fail(where, "pod securityContext.seccompProfile.type must be RuntimeDefault")
    if spec.get("enableServiceLinks") is not False:
        # Service links inject TASKER_API_PORT & co. for a Service named
        # tasker-api, which Tasker's TASKER_ prefix would read as config.
        rep.fail(where, "pod needs enableServiceLinks: false")
    for c in spec.get("containers", []):
        at = f"container {c.get('name')}"
        image = c.get("image", "")
        if image.endswith(":latest") or ("@" not in image and ":" not in image.rsplit("/", 1)[-1]):
            rep.fail(where, f"{at} image {image!r} must carry a version tag or digest")
        sc = c.get("securityContext") or {}
        if sc.get("readOnlyRootFilesystem") is not True:
            rep.fail(where, f"{at} needs readOnlyRootFilesystem: true")
        if sc.get("allowPrivilegeEscalation") is not False:
            rep.fail(where, f"{at} needs allowPrivilegeEscalation: false")
        if "ALL" not in (get(sc, "capabilities", "drop") or []):
            rep.fail(where, f"{at} must drop ALL capabilities")
        if not get(c, "resources", "requests") or not get(c, "resources", "limits", "memory"):
            rep.fail(where, f"{at} needs resource requests and a memory limit")
        if doc["kind"] == "Deployment":
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if not c.get(probe):
                    rep.fail(where, f"{at} has no {probe}")
    # Volumes must resolve to rendered objects (or, for Secrets, an existing one).
    for vol in spec.get("volumes", []):
        for kind, ref_key in (("ConfigMap", "configMap"), ("Secret", "secret")):
            src = vol.get(ref_key)
            if not src:
                continue
            name = src.get("name") if kind == "ConfigMap" else src.get("secretName")
            target = by_kind.get(kind, {}).get(name)
            if target is None:
                if kind == "Secret":
                    features.add("existing-secret")
                    continue
                rep.fail(where, f"volume {vol.get('name')} names ConfigMap {name!r}, which is not rendered")
                continue
            keys = set((target.get("data") or {}).keys()) | set((target.get("stringData") or {}).keys())
            for item in src.get("items", []):
                if item.get("key") not in keys:
                    rep.fail(where, f"volume {vol.get('name')} wants key {item.get('key')!r} of {kind} {name}, which has {sorted(keys)}")


def env_value(container, name):
    for env in container.get("env", []) or []:
        if env.get("name") == name and "value" in env:
            return env["value"]
    return None


def check_worker_grace(doc, where, rep, by_kind):
    spec, _ = pod_spec(doc)
    if spec is None or doc["kind"] != "Deployment":
        return
    containers = spec.get("containers", [])
    if not any(c.get("args") == ["worker"] for c in containers):
        return
    grace = 20  # the binary's default worker.shutdown_grace_seconds
    for vol in spec.get("volumes", []):
        name = get(vol, "configMap", "name")
        toml_text = get(by_kind.get("ConfigMap", {}).get(name) or {}, "data", "tasker.toml")
        if toml_text:
            grace = get(tomllib.loads(toml_text), "worker", "shutdown_grace_seconds", default=grace)
    for c in containers:
        override = env_value(c, "TASKER_WORKER__SHUTDOWN_GRACE_SECONDS")
        if override is not None:
            grace = int(override)
    period = spec.get("terminationGracePeriodSeconds", 30)
    if period <= grace + 5:
        rep.fail(where, f"terminationGracePeriodSeconds {period} leaves no margin over worker.shutdown_grace_seconds {grace}")


def figment_list(text: str | None) -> list[str] | None:
    """Parses a TASKER_…=[a, b] list as figment does for plain names; None
    when the variable is unset."""
    if text is None:
        return None
    inner = text.strip()
    if not (inner.startswith("[") and inner.endswith("]")):
        return [inner]
    return [item.strip().strip('"') for item in inner[1:-1].split(",") if item.strip()]


def worker_queues(deployment: dict) -> list[str] | None:
    """The queues a worker Deployment consumes ([] for every queue), or None
    when it runs no worker."""
    spec, _ = pod_spec(deployment)
    for c in (spec or {}).get("containers", []):
        if c.get("args") == ["worker"]:
            return figment_list(env_value(c, "TASKER_WORKER__QUEUES")) or []
    return None


def autoscaler_queues(doc: dict) -> list[str] | None:
    """The queues a worker autoscaler's metric covers ([] for every queue), or
    None when that cannot be read (e.g. a custom KEDA query)."""
    if doc["kind"] == "HorizontalPodAutoscaler":
        for m in get(doc, "spec", "metrics", default=[]):
            if get(m, "external", "metric", "name") != "tasker_queue_depth":
                continue
            for expr in get(m, "external", "metric", "selector", "matchExpressions", default=[]):
                if expr.get("key") == "queue" and expr.get("operator") == "In":
                    return list(expr.get("values") or [])
            if "queue" in (get(m, "external", "metric", "selector", "matchLabels") or {}):
                return [m["external"]["metric"]["selector"]["matchLabels"]["queue"]]
            return []
        return None
    for trig in get(doc, "spec", "triggers", default=[]):
        match = re.search(r'queue=~"((?:[^"\\]|\\.)*)"', get(trig, "metadata", "query") or "")
        if match:
            regex = match.group(1).replace("\\\\", "\\")
            return [] if regex == ".+" else [re.sub(r"\\(.)", r"\1", q) for q in regex.split("|")]
    return None


def check_workers(path, rep, by_kind, features):
    deployments = by_kind.get("Deployment", {})
    workers = {name: q for name, d in deployments.items() if (q := worker_queues(d)) is not None}
    if len(workers) >= 2:
        features.add("worker-pools")
    # Deployments must not adopt each other's pods.
    for name, d in deployments.items():
        selector = get(d, "spec", "selector", "matchLabels")
        for other, o in deployments.items():
            if other != name and selects(selector, get(o, "spec", "template", "metadata", "labels")):
                rep.fail(f"{path}: Deployment/{name}", f"spec.selector {selector} also matches the pods of Deployment/{other}")
    # A pod covered by two PodDisruptionBudgets cannot be evicted.
    pdbs = by_kind.get("PodDisruptionBudget", {})
    for name, d in deployments.items():
        labels = get(d, "spec", "template", "metadata", "labels")
        covering = sorted(p for p, pdb in pdbs.items() if selects(get(pdb, "spec", "selector", "matchLabels"), labels))
        if len(covering) > 1:
            rep.fail(f"{path}: Deployment/{name}", f"its pods are covered by several PodDisruptionBudgets: {covering}")
    # A worker autoscaler scales on its own Deployment's queues.
    for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
        for name, doc in by_kind.get(kind, {}).items():
            target = get(doc, "spec", "scaleTargetRef", "name")
            if target not in workers:
                continue
            covered = autoscaler_queues(doc)
            if covered is not None and sorted(covered) != sorted(workers[target]):
                rep.fail(f"{path}: {kind}/{name}",
                         f"scales on the queues {covered or 'every queue'}, but Deployment/{target} "
                         f"consumes {workers[target] or 'every queue'}")


def check_config_map(doc, where, rep, features):
    data = doc.get("data") or {}
    if "tasker.toml" in data:
        try:
            config = tomllib.loads(data["tasker.toml"])
        except tomllib.TOMLDecodeError as err:
            rep.fail(where, f"tasker.toml is not valid TOML: {err}")
        else:
            unknown = set(config) - TOML_SECTIONS
            if unknown:
                rep.fail(where, f"tasker.toml has unknown sections {sorted(unknown)}")
    if get(doc, "metadata", "labels", "grafana_dashboard") == "1":
        features.add("dashboard")
        for key, text in data.items():
            try:
                dashboard = json.loads(text)
            except json.JSONDecodeError as err:
                rep.fail(where, f"{key} is not JSON: {err}")
                continue
            for panel in dashboard.get("panels", []):
                for target in panel.get("targets", []):
                    error = parse_promql(target.get("expr", ""))
                    if error:
                        rep.fail(where, f"panel {panel.get('title')!r}: {error}")


def check_selectors(doc, where, rep, pods):
    kind = doc["kind"]
    selector = None
    if kind == "Service":
        selector = get(doc, "spec", "selector")
    elif kind == "PodDisruptionBudget":
        selector = get(doc, "spec", "selector", "matchLabels")
    elif kind in ("Deployment",):
        selector = get(doc, "spec", "selector", "matchLabels")
        labels = get(doc, "spec", "template", "metadata", "labels")
        if not selects(selector, labels):
            rep.fail(where, "spec.selector does not match the pod template's labels")
        return
    else:
        return
    if not any(selects(selector, labels) for labels in pods):
        rep.fail(where, f"selector {selector} matches no rendered pod template")


# Container ports that serve /metrics and the probes: for Prometheus and the
# kubelet, never for clients.
OPS_PORT_NAMES = {"ops", "probes"}
EXPOSED_SERVICE_TYPES = {"NodePort", "LoadBalancer"}


def ops_container_ports(docs) -> list[tuple[dict, set[int]]]:
    """(pod labels, numbers of its operations ports) of every pod template."""
    found = []
    for doc in docs:
        spec, labels = pod_spec(doc)
        if spec is None:
            continue
        numbers = {port.get("containerPort")
                   for container in spec.get("containers") or []
                   for port in container.get("ports") or []
                   if port.get("name") in OPS_PORT_NAMES}
        found.append((labels, numbers))
    return found


def is_ops_port(service: dict, port: dict, ops_ports) -> bool:
    """Whether a Service port leads to an operations port: by its name, by
    the container port it names, or by the number of one its pods name so."""
    target = port.get("targetPort", port.get("port"))
    if port.get("name") in OPS_PORT_NAMES or target in OPS_PORT_NAMES:
        return True
    selector = get(service, "spec", "selector")
    return isinstance(target, int) and any(
        target in numbers for labels, numbers in ops_ports if selects(selector, labels))


def check_service_exposure(doc, where, rep, ops_ports):
    spec = doc.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    if kind not in EXPOSED_SERVICE_TYPES and not spec.get("externalIPs"):
        return
    how = f"type {kind}" if kind in EXPOSED_SERVICE_TYPES else "externalIPs"
    for port in spec.get("ports") or []:
        if is_ops_port(doc, port, ops_ports):
            rep.fail(where, f"port {port.get('name') or port.get('port')!r} leads to an operations port "
                            f"(/metrics, probes), and a Service with {how} exposes it outside the cluster; "
                            "put it on a ClusterIP Service of its own")


def check_ingress(doc, where, rep, by_kind, ops_ports):
    backends = [("defaultBackend", get(doc, "spec", "defaultBackend"))]
    for r, rule in enumerate(get(doc, "spec", "rules", default=[])):
        for p, path in enumerate(get(rule, "http", "paths", default=[])):
            backends.append((f"rules[{r}].paths[{p}]", get(path, "backend")))
    for at, backend in backends:
        if not backend:
            continue
        name = get(backend, "service", "name")
        port = get(backend, "service", "port", "name")
        number = get(backend, "service", "port", "number")
        svc = by_kind.get("Service", {}).get(name)
        if svc is None:
            rep.fail(where, f"{at} backend Service {name!r} is not rendered")
            continue
        ports = get(svc, "spec", "ports", default=[])
        if port and port not in [x.get("name") for x in ports]:
            rep.fail(where, f"{at} backend port {port!r} is not a port of Service {name}")
        routed = [x for x in ports if (port and x.get("name") == port) or (number is not None and x.get("port") == number)]
        if port in OPS_PORT_NAMES or any(is_ops_port(svc, x, ops_ports) for x in routed):
            rep.fail(where, f"{at} routes to the operations port {port or number!r} of Service {name}: "
                            "/metrics and the probes must not be reachable through the Ingress")


def check_file(path: str, text: str, version: str, rep: Report) -> set[str]:
    features: set[str] = set()
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as err:
        rep.fail(path, f"not valid YAML: {err}")
        return features
    if not docs:
        rep.fail(path, "no objects rendered")
        return features
    by_kind: dict[str, dict[str, dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc.get("kind"), {})[get(doc, "metadata", "name")] = doc
    pods = [pod_spec(d)[1] for d in docs if pod_spec(d)[0] is not None]
    services = list(by_kind.get("Service", {}).values())
    ops_ports = ops_container_ports(docs)
    targets: dict[str, list[str]] = {}

    for doc in docs:
        where = f"{path}: {ident(doc)}"
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind") or not get(doc, "metadata", "name"):
            rep.fail(where, "every object needs apiVersion, kind and metadata.name")
            continue
        key = (doc["apiVersion"], doc["kind"])
        if key in CUSTOM_KINDS:
            {"ServiceMonitor": lambda: check_service_monitor(doc, where, rep, services),
             "PrometheusRule": lambda: check_prometheus_rule(doc, where, rep),
             "ScaledObject": lambda: check_scaled_object(doc, where, rep)}[doc["kind"]]()
        elif kubernetes_validate is None:
            rep.fail(where, "kubernetes-validate is not installed")
        else:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except SchemaNotFoundError:
                rep.fail(where, f"unknown kind {doc['apiVersion']}/{doc['kind']}: neither kubernetes-validate "
                                "nor this checker knows it; add a check for it here")
            except Exception as err:  # ValidationError carries the path
                where_in = ".".join(str(p) for p in getattr(err, "path", []))
                rep.fail(where, f"invalid at {where_in or '(root)'}: {getattr(err, 'message', err)}")

        kind = doc["kind"]
        if kind == "ServiceMonitor":
            features.add("service-monitor")
        elif kind == "PrometheusRule":
            features.add("prometheus-rule")
        elif kind == "ScaledObject":
            features.add("keda")
            targets.setdefault(get(doc, "spec", "scaleTargetRef", "name"), []).append(ident(doc))
        elif kind == "Ingress":
            features.add("ingress")
            check_ingress(doc, where, rep, by_kind, ops_ports)
        elif kind == "Service":
            check_service_exposure(doc, where, rep, ops_ports)
        elif kind == "PodDisruptionBudget":
            features.add("pdb")
        elif kind == "Job":
            features.add("migration-job")
        elif kind == "HorizontalPodAutoscaler":
            types = {m.get("type") for m in get(doc, "spec", "metrics", default=[])}
            if "External" in types:
                features.add("worker-hpa")
                names = {get(m, "external", "metric", "name") for m in get(doc, "spec", "metrics", default=[])}
                if "tasker_queue_depth" not in names:
                    rep.fail(where, "the worker HPA must scale on tasker_queue_depth")
            if "Resource" in types:
                features.add("api-hpa")
            targets.setdefault(get(doc, "spec", "scaleTargetRef", "name"), []).append(ident(doc))
        elif kind == "ConfigMap":
            check_config_map(doc, where, rep, features)
        check_pod(doc, where, rep, by_kind, features)
        check_worker_grace(doc, where, rep, by_kind)
        check_selectors(doc, where, rep, pods)

    check_workers(path, rep, by_kind, features)
    for target, scalers in targets.items():
        deployment = by_kind.get("Deployment", {}).get(target)
        if deployment is None:
            rep.fail(path, f"{', '.join(scalers)} target Deployment {target!r}, which is not rendered")
            continue
        if len(scalers) > 1:
            rep.fail(path, f"Deployment {target} has more than one autoscaler: {', '.join(scalers)}")
        if "replicas" in (deployment.get("spec") or {}):
            rep.fail(path, f"Deployment {target} is autoscaled and must not set spec.replicas")
    return features


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kube-version", default="1.30.0")
    parser.add_argument("--require-features", default="", help="comma-separated; known: " + ", ".join(FEATURES))
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    rep = Report()
    seen: set[str] = set()
    for path in args.files:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
        found = check_file(path, text, args.kube_version, rep)
        print(f"  {path}: {', '.join(sorted(found)) or 'no optional objects'}")
        seen |= found
    for feature in filter(None, args.require_features.split(",")):
        if feature not in FEATURES:
            rep.fail("--require-features", f"unknown feature {feature!r}")
        elif feature not in seen:
            rep.fail("coverage", f"no input renders {feature} ({FEATURES[feature]})")
    for error in rep.errors:
        print(f"ERROR {error}", file=sys.stderr)
    return 1 if rep.errors else 0


if __name__ == "__main__":
    sys.exit(main())
