#!/usr/bin/env python3
"""Helpers for the alert unit tests of .ci/deploy-checks.

    check_alerts.py extract RENDER RULES
        Writes the groups of every PrometheusRule in RENDER (`helm template …`
        output) to RULES as a plain Prometheus rules file, for promtool.
        Writes nothing when RENDER has no PrometheusRule.

    check_alerts.py coverage RULES TESTS
        Fails unless every alert of RULES has, in the promtool test file TESTS,
        at least one alert_rule_test case that expects it to fire and one that
        expects it not to (empty exp_alerts), and unless every alertname the
        tests name exists: promtool passes a test of a misspelt alert that
        "must not fire".
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml


class Dumper(yaml.SafeDumper):
    """Literal blocks for multi-line strings (the expressions stay readable)."""


Dumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def extract(render: str, rules: str) -> int:
    groups = []
    for doc in yaml.safe_load_all(open(render, encoding="utf-8")):
        if doc and doc.get("kind") == "PrometheusRule":
            groups.extend((doc.get("spec") or {}).get("groups") or [])
    if not groups:
        print(f"  {render}: no PrometheusRule")
        return 0
    Path(rules).parent.mkdir(parents=True, exist_ok=True)
    with open(rules, "w", encoding="utf-8") as out:
        yaml.dump({"groups": groups}, out, Dumper=Dumper, sort_keys=False, width=1000)
    alerts = sum(1 for g in groups for r in g.get("rules") or [] if r.get("alert"))
    print(f"  {render}: {len(groups)} group(s), {alerts} alerting rule(s) -> {rules}")
    return 0


def coverage(rules: str, tests: str) -> int:
    alerts = {r["alert"] for g in yaml.safe_load(open(rules, encoding="utf-8"))["groups"]
              for r in g.get("rules") or [] if r.get("alert")}
    fires: dict[str, int] = {}
    silent: dict[str, int] = {}
    errors = []
    for t, test in enumerate(yaml.safe_load(open(tests, encoding="utf-8")).get("tests") or []):
        for case in test.get("alert_rule_test") or []:
            name = case.get("alertname")
            if name not in alerts:
                errors.append(f"tests[{t}] names alert {name!r}, which the rules do not have")
                continue
            bucket = fires if case.get("exp_alerts") else silent
            bucket[name] = bucket.get(name, 0) + 1
    for name in sorted(alerts):
        if not fires.get(name):
            errors.append(f"{name}: no test case where it fires")
        if not silent.get(name):
            errors.append(f"{name}: no test case where it must stay silent (exp_alerts: [])")
    for error in errors:
        print(f"ERROR {tests}: {error}", file=sys.stderr)
    if not errors:
        print(f"  {tests}: every alert of {rules} fires in {sum(fires.values())} case(s) "
              f"and stays silent in {sum(silent.values())}")
    return 1 if errors else 0


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "extract":
        return extract(sys.argv[2], sys.argv[3])
    if len(sys.argv) == 4 and sys.argv[1] == "coverage":
        return coverage(sys.argv[2], sys.argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
