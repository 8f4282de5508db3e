# Everyday commands. `just` lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

default:
    @just --list

# API and a worker in one process, with PostgreSQL and Redis on localhost
dev:
    cargo run -- dev

# The test suite (needs PostgreSQL and Redis on localhost, see README)
test:
    cargo test

# Formatting check and clippy with warnings as errors
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# Format the code
fmt:
    cargo fmt --all

# Redis Cluster and Sentinel tests against throwaway servers (ports 7101-7103, 7201-7202, 27201)
redis-modes *FILTERS:
    .ci/redis-modes {{FILTERS}}

# Rewrite docs/openapi.json from the code (commit it with the API change)
openapi:
    UPDATE_OPENAPI=1 cargo test --test api contract

# /docs renders in headless Chromium with no network but localhost
docs-check:
    .ci/docs-check

# /console in headless Chromium against `tasker dev` with keys on: real tasks shown, actions work; --screenshots rewrites docs/console/*.png
console-check *ARGS:
    .ci/console-check {{ARGS}}

# Schemathesis against a running `tasker dev`: the API keeps its OpenAPI contract
contract-check:
    .ci/contract-check

# Generated Python and TypeScript clients against a running `tasker dev`; promtool check metrics on both /metrics
clients-check:
    .ci/clients-check

# Behind PgBouncer (Debian's, transaction mode): 2,000 tasks through api and worker processes, no error logged
pgbouncer-check:
    .ci/pgbouncer-check

# Benchmark: release api and worker against local PostgreSQL and Redis (options: --quick, --cases f,j,k, … see scripts/bench.sh --help); report in target/bench/report.md
bench *ARGS:
    bash scripts/bench.sh {{ARGS}}

# HPA controller played against real workers on a burst of query_llm tasks; picture in target/scaling/ (see docs/scaling.md)
autoscale-sim *ARGS:
    bash scripts/autoscale-sim.sh {{ARGS}}

# What one task costs PostgreSQL (WAL, storage) and Redis (queued, cached); run on the PostgreSQL host (reads pg_wal)
task-costs *ARGS:
    bash scripts/task-costs.sh {{ARGS}}

# Whole stack in Docker: PostgreSQL, Redis, migrate, api, worker
up *ARGS:
    docker compose up -d --build {{ARGS}}

# Stop the stack (add -v to drop its volumes)
down *ARGS:
    docker compose down {{ARGS}}

# helm lint --strict and validation of every chart render
helm-lint:
    .ci/deploy-checks helm

# Unit tests of the chart's alerts (promtool test rules on charts/tasker/tests)
alerts-test:
    .ci/deploy-checks alerts

# Validate k8s/ (base up to date with the chart, kustomize builds valid)
k8s-validate:
    .ci/deploy-checks k8s

# Regenerate k8s/base from the chart's default render
k8s-base:
    .ci/deploy-checks generate-k8s-base

# Every deployment check: chart, alerts, k8s/, compose, Dockerfile, dashboard, workflow
deploy-checks:
    .ci/deploy-checks
