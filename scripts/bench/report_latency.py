"""Report section of case (k) of scripts/bench.sh: latency with the worker
running (issue #17, item 4). Used by report.py.

Submit → result is one client's POST /run-task followed by
GET /tasks/{id}?wait=… until the task is finished, on one kept-alive
connection, 2,000 times after 100 of warm-up. The submit p99 at half the
maximum comes from wrk at 32 connections, each pausing between requests so
that together they offer half the rate an unpaced run reached just before.
"""

from report_cases import median, ms, spread, verdict

TARGET_ROUNDTRIP_P50_MS = 3.0
TARGET_HALF_RATE_P99_MS = 25.0


def rate(value):
    return f"{value:,.0f} req/s"


def write(results, meta, add):
    trips = [r for r in results.select(phase="latency") if r.get("n")]
    peak = results.select(phase="latency_max")
    half = results.select(phase="latency_half")
    if not (trips or half):
        return
    p50 = median([r["p50_ms"] for r in trips])
    half_p99 = median([r["p99_ms"] for r in half])
    add("## (k) Latency, worker running")
    add("")
    add("One client submits a `sum` task and reads it with `GET /tasks/{id}?wait=5` until "
        "it is finished, one task at a time on one kept-alive connection (2,000 tasks after "
        "100 of warm-up; the client is Python, whose own time per round trip is included). "
        "Then wrk posts at 32 connections as fast as they go, and again paced to half the "
        "rate that run reached (each connection waits a fixed time between requests).")
    add("")
    add("| target | measured (median) | |")
    add("|---|---|---|")
    add(f"| submit → result p50 ≤ {TARGET_ROUNDTRIP_P50_MS:.0f} ms (one client) | "
        f"{'n/a' if p50 is None else ms(p50)} | "
        f"{verdict(p50, lambda v: v <= TARGET_ROUNDTRIP_P50_MS)} |")
    add(f"| submit p99 ≤ {TARGET_HALF_RATE_P99_MS:.0f} ms at half the maximum rate | "
        f"{'n/a' if half_p99 is None else ms(half_p99)} | "
        f"{verdict(half_p99, lambda v: v <= TARGET_HALF_RATE_P99_MS)} |")
    add("")
    floor = median([r.get("floor_p50_ms") for r in trips])
    if floor is not None:
        add(f"Of the round trip, {ms(floor)} (median) is the floor of any two requests on "
            "this client's connection: two `GET /health`, answered at once by the api.")
        add("")
    add("| measurement | rate | p50 | p90 | p99 | max | errors / not completed |")
    add("|---|---|---|---|---|---|---|")
    if trips:
        add(f"| submit → result, one client | — | {spread([r['p50_ms'] for r in trips], ms)} | "
            f"{spread([r['p90_ms'] for r in trips], ms)} | "
            f"{spread([r['p99_ms'] for r in trips], ms)} | "
            f"{spread([r['max_ms'] for r in trips], ms)} | "
            f"{sum(r.get('failures', 0) for r in results.select(phase='latency'))} |")
    for label, rows in (("POST, 32 connections, unpaced (the maximum)", peak),
                        ("POST, 32 connections, paced to half of it", half)):
        if rows:
            add(f"| {label} | {spread([r['rps'] for r in rows], rate)} | "
                f"{spread([r['p50_ms'] for r in rows], ms)} | "
                f"{spread([r['p90_ms'] for r in rows], ms)} | "
                f"{spread([r['p99_ms'] for r in rows], ms)} | "
                f"{spread([r['max_ms'] for r in rows], ms)} | "
                f"{sum(r.get('errors', 0) for r in rows)} |")
    add("")
