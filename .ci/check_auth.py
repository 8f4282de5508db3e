#!/usr/bin/env python3
"""Checks how a chart render wires API authentication.

Usage: check_auth.py TASKER_BIN RENDER [--auth on|off] [--bootstrap-token yes|no]

For RENDER (`helm template …` output):

- only the api container gets the bootstrap token: its
  TASKER_AUTH__BOOTSTRAP_TOKEN_FILE names a file that one of its volume
  mounts provides from a Secret; no worker, no migration Job and no other
  container has that variable, mounts that Secret key or any item named
  bootstrap-token; the migration hook's copy of the Secret does not hold it;
  and nobody gets the token as a plain TASKER_AUTH__BOOTSTRAP_TOKEN variable;
- when the render creates that Secret, the token in it is 32 characters or
  more (the binary's minimum) and the binary accepts it:
  `TASKER_BIN --config <the api's tasker.toml> config` with the api
  container's literal TASKER_ variables and TASKER_AUTH__BOOTSTRAP_TOKEN_FILE
  naming a copy of the Secret's value;
- --auth: auth.enabled as the binary reads it from that configuration;
- --bootstrap-token: whether the api container gets a bootstrap token.
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

TOKEN_FILE_VAR = "TASKER_AUTH__BOOTSTRAP_TOKEN_FILE"
TOKEN_VAR = "TASKER_AUTH__BOOTSTRAP_TOKEN"
MIN_TOKEN_LENGTH = 32


def is_hook(doc: dict) -> bool:
    return "helm.sh/hook" in ((doc.get("metadata") or {}).get("annotations") or {})


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env") or [] if "name" in e}


def secret_items(spec: dict, volume_name: str | None = None):
    """(volume, Secret name, key, path) of every Secret volume item."""
    for volume in spec.get("volumes") or []:
        secret = volume.get("secret")
        if not secret or (volume_name and volume["name"] != volume_name):
            continue
        for item in secret.get("items") or []:
            yield volume["name"], secret.get("secretName"), item.get("key"), item.get("path")


def mounted_secret_key(spec: dict, container: dict, path: str) -> tuple[str, str] | None:
    """The (Secret name, key) that the file `path` of `container` comes from."""
    for mount in container.get("volumeMounts") or []:
        prefix = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(prefix):
            continue
        relative = path[len(prefix):]
        for _, secret, key, item_path in secret_items(spec, mount["name"]):
            if item_path == relative:
                return secret, key
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasker")
    parser.add_argument("render")
    parser.add_argument("--auth", choices=["on", "off"])
    parser.add_argument("--bootstrap-token", choices=["yes", "no"])
    args = parser.parse_args()

    docs = [d for d in yaml.safe_load_all(Path(args.render).read_text(encoding="utf-8")) if d]
    errors: list[str] = []

    def fail(where: str, message: str) -> None:
        errors.append(f"{args.render}: {where}: {message}")

    pods = []  # (where, pod spec, container)
    for doc in docs:
        if doc.get("kind") in ("Deployment", "Job"):
            spec = doc["spec"]["template"]["spec"]
            for container in spec.get("containers") or []:
                where = f"{doc['kind']}/{doc['metadata']['name']} container {container.get('name')}"
                pods.append((where, spec, container))

    # The api: where its token comes from.
    api = [(w, s, c) for w, s, c in pods if (c.get("args") or [None])[0] == "api"]
    if not api:
        fail("(render)", "no api container")
    token_sources: set[tuple[str, str]] = set()
    for where, spec, container in api:
        env = env_of(container)
        if TOKEN_VAR in env:
            fail(where, f"gets the token as the plain variable {TOKEN_VAR}; use {TOKEN_FILE_VAR}")
        path = env.get(TOKEN_FILE_VAR)
        if path is None:
            continue
        source = mounted_secret_key(spec, container, path)
        if source is None:
            fail(where, f"{TOKEN_FILE_VAR}={path}, but no Secret volume item is mounted there")
        else:
            token_sources.add(source)
    has_token = bool(token_sources)
    if args.bootstrap_token == "yes" and not has_token:
        fail("api", f"the api container has no {TOKEN_FILE_VAR}")
    if args.bootstrap_token == "no" and has_token:
        fail("api", f"the api container gets a bootstrap token ({sorted(token_sources)}), none was expected")
    if len(token_sources) > 1:
        fail("api", f"api containers read the bootstrap token from different places: {sorted(token_sources)}")

    # Everything else: no token, not even mounted without the variable.
    token_keys = {key for _, key in token_sources}
    api_ids = {id(c) for _, _, c in api}
    for where, spec, container in pods:
        if id(container) in api_ids:
            continue
        env = env_of(container)
        for var in (TOKEN_FILE_VAR, TOKEN_VAR):
            if var in env:
                fail(where, f"sets {var}: only the api pods may get the bootstrap token")
        for volume, secret, key, item_path in secret_items(spec):
            if (secret, key) in token_sources or item_path == "bootstrap-token":
                fail(where, f"mounts the bootstrap token (volume {volume}, Secret {secret}, key {key})")
    for doc in docs:
        if doc.get("kind") == "Secret" and is_hook(doc):
            held = token_keys & set((doc.get("data") or {}) | (doc.get("stringData") or {}))
            if held:
                fail(f"Secret/{doc['metadata']['name']}", f"a hook's copy of the Secret holds the bootstrap token ({sorted(held)})")

    # The token itself, when the render creates its Secret.
    secrets = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Secret" and not is_hook(d)}
    token = None
    described = "no bootstrap token"
    for secret_name, key in sorted(token_sources):
        secret = secrets.get(secret_name)
        if secret is None:
            described = f"bootstrap token from the existing Secret {secret_name}, key {key}"
            continue
        if key in (secret.get("stringData") or {}):
            token = secret["stringData"][key]
        elif key in (secret.get("data") or {}):
            token = base64.b64decode(secret["data"][key]).decode()
        else:
            fail(f"Secret/{secret_name}", f"has no key {key}, which the api mounts")
            continue
        length = len(token.strip())
        if length < MIN_TOKEN_LENGTH:
            fail(f"Secret/{secret_name}", f"the bootstrap token ({key}) has {length} characters, "
                                          f"fewer than the {MIN_TOKEN_LENGTH} the binary requires")
        described = f"bootstrap token in Secret {secret_name}, key {key}, {length} characters"

    # What the binary makes of the api's configuration and token.
    enabled = None
    for where, spec, container in api[:1]:
        config_maps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
        toml_text = None
        for volume in spec.get("volumes") or []:
            name = (volume.get("configMap") or {}).get("name")
            if name in config_maps:
                toml_text = (config_maps[name].get("data") or {}).get("tasker.toml")
        if toml_text is None:
            fail(where, "mounts no rendered ConfigMap with tasker.toml")
            break
        literal = {k: v for k, v in env_of(container).items()
                   if k.startswith("TASKER_") and k != "TASKER_CONFIG" and not k.endswith("_FILE") and v is not None}
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp, "tasker.toml")
            config.write_text(toml_text, encoding="utf-8")
            env = {"PATH": os.environ.get("PATH", ""), **literal}
            if token is not None:
                Path(tmp, "bootstrap-token").write_text(token, encoding="utf-8")
                env[TOKEN_FILE_VAR] = str(Path(tmp, "bootstrap-token"))
            run = subprocess.run([args.tasker, "--config", str(config), "config"],
                                 capture_output=True, text=True, env=env)
        if run.returncode != 0:
            fail(where, f"tasker rejects the api's configuration and bootstrap token: {run.stderr.strip()}")
            break
        enabled = tomllib.loads(run.stdout).get("auth", {}).get("enabled")
    if args.auth and enabled is not None and enabled != (args.auth == "on"):
        fail("api", f"tasker reads auth.enabled = {str(enabled).lower()}, expected {args.auth}")

    for error in errors:
        print(f"ERROR {error}", file=sys.stderr)
    state = {True: "auth on", False: "auth off", None: "auth unknown"}[enabled]
    print(f"  {args.render}: {state}, {described}{', api pods only' if has_token else ''}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
