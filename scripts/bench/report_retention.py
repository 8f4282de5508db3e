"""Report section of case (j) of scripts/bench.sh: retention at the
service's peak (issue #16). Used by report.py.

Each run fills a fresh database with finished tasks that pass
`retention.days` at a steady rate during the run, then submits as (f) does,
once with retention off and once on. Throughput on ÷ off is taken run by
run. Retention keeps pace when, at the end of the load, what it left behind
(expired but still stored) is no more than about one second of expiries:
the pass interval of the run.
"""

from report_cases import cpu_ms, median, num, paired_ratios, spread, times, verdict

# What "without hurting throughput" allows: end to end with retention
# deleting at least this share of the same without.
TARGET_RATIO = 0.90


def write(results, meta, add):
    rows = {mode: results.select(phase="retention", retention=mode) for mode in ("off", "on")}
    if not (rows["off"] or rows["on"]):
        return
    done = {mode: [r for r in rows[mode] if r.get("finished")] for mode in rows}
    rate = float(meta.get("expiring_rate", 0) or 0)
    ratios = paired_ratios(done["on"], done["off"], "tasks_per_s")
    left = [r["left_expired_at_load_end"] for r in done["on"]]
    kept_pace = [v <= rate for v in left]

    add("## (j) Retention at peak: expired tasks deleted as fast as tasks arrive")
    add("")
    add(f"Every run creates and migrates a new database and fills it with finished tasks "
        f"that pass `retention.days` = 1 at {num(rate)} per second (yesterday's traffic at "
        f"the same peak; {meta.get('expiring_backlog', '?')} s of them already past it), "
        "then starts the api and one worker and runs (f)'s load: wrk posting `sum` tasks at "
        f"32 connections for {meta.get('duration_s', '?')} s, then drained. Retention is off "
        "(`retention.days` = 0) or on with a pass every second, in turn. *Deleted during "
        "the load* counts from the fill to wrk's end; *left behind* is what had passed "
        "retention and was still stored at that moment.")
    add("")
    add(f"Target: end to end with retention on ≥ {TARGET_RATIO:.2f}× off, and retention "
        f"keeping pace (left behind ≤ one second of expiries, {num(rate)} tasks): "
        f"{verdict(median(ratios), lambda v: v >= TARGET_RATIO)} on throughput "
        f"({spread(ratios, times)}), "
        f"**{'met' if kept_pace and all(kept_pace) else 'not met'}** on pace.")
    add("")
    add("| retention | submit req/s | end to end tasks/s | submit p99 | expired during the "
        "load | deleted during the load | deletes/s | left behind at the load's end | "
        "left after the drain | CPU ms per task: worker / postgres | HTTP errors / failed "
        "/ unfinished |")
    add("|---|---|---|---|---|---|---|---|---|---|---|")
    for mode in ("off", "on"):
        if not rows[mode]:
            continue
        d = done[mode]
        cpu = " / ".join(spread([cpu_ms(r, part, r["stored"]) for r in d], num)
                         for part in ("worker", "postgres"))
        add(f"| {mode} | {spread([r['rps'] for r in d], num)} | "
            f"{spread([r['tasks_per_s'] for r in d], num)} | "
            f"{spread([r['p99_ms'] for r in d], lambda v: f'{v:.1f} ms')} | "
            f"{spread([r.get('expired_by_load_end') for r in d], num)} | "
            f"{spread([r.get('deleted_during_load') for r in d], num)} | "
            f"{spread([r.get('deletes_per_s_during_load') for r in d], num)} | "
            f"{spread([r.get('left_expired_at_load_end') for r in d], num)} | "
            f"{spread([r.get('left_expired') for r in d], num)} | {cpu} | "
            f"{sum(r.get('errors', 0) for r in rows[mode])} / "
            f"{sum(r.get('failed', 0) for r in rows[mode])} / "
            f"{len(rows[mode]) - len(d)} |")
    add("")
