"""Draws the simulation's ticks: queue and throughput above, replicas below.

The right axis below is scaled so that N replicas sit at the height of
N × concurrency calls in flight: where the purple line stays under the red
one, slots are idle (the LLM budget or an empty queue).

Also redraws a picture from its CSV:
  plot.py TICKS.csv OUT.png --target 50 --max 10 --concurrency 4 [--llm-budget 16]
"""

import argparse
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

SMOOTH_TICKS = 5  # the finishing rate is drawn as a moving average


def smoothed(values, n=SMOOTH_TICKS):
    out = []
    for i in range(len(values)):
        window = values[max(0, i - n + 1) : i + 1]
        out.append(sum(window) / len(window))
    return out


def draw(ticks, args, path):
    t = [row["t"] for row in ticks]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 5), dpi=100)
    title = args.title or (
        f"target {args.target:g} tasks/replica, {args.min_replicas}-{args.max_replicas} replicas "
        f"× concurrency {args.concurrency}"
        + (f", llm.max_concurrency {args.llm_budget}" if args.llm_budget else "")
    )
    fig.suptitle(title, fontsize=11)

    top.plot(t, [row["depth"] for row in ticks], color="tab:blue")
    top.set_ylabel("queue depth", color="tab:blue")
    top.set_ylim(bottom=0)
    rate = top.twinx()
    rate.plot(t, smoothed([row["rate"] for row in ticks]), color="tab:green")
    rate.set_ylabel(f"finished/s ({SMOOTH_TICKS * args.sync:g} s avg)", color="tab:green")
    rate.set_ylim(bottom=0)
    top.grid(alpha=0.3)

    headroom = args.max_replicas + 4
    bottom.step(t, [row["replicas"] + row["terminating"] for row in ticks], where="post",
                color="tab:gray", alpha=0.5, label="replicas + terminating")
    bottom.step(t, [row["replicas"] for row in ticks], where="post", color="tab:red",
                label="replicas")
    bottom.set_ylabel("worker replicas")
    bottom.set_ylim(0, headroom)
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_xlabel(f"seconds (sync period {args.sync:g} s)")
    calls = bottom.twinx()
    calls.plot(t, [row["llm_in_flight"] for row in ticks], color="tab:purple", alpha=0.7,
               label="LLM calls in flight")
    if args.llm_budget:
        calls.axhline(float(args.llm_budget), color="tab:purple", linestyle=":",
                      label=f"llm.max_concurrency {args.llm_budget}")
    calls.set_ylabel("LLM calls in flight", color="tab:purple")
    calls.set_ylim(0, headroom * args.concurrency)
    handles = bottom.get_legend_handles_labels()[0] + calls.get_legend_handles_labels()[0]
    bottom.legend(handles=handles, loc="upper center", ncol=4, fontsize=8, framealpha=0.9)
    bottom.grid(alpha=0.3)

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("csv")
    p.add_argument("png")
    p.add_argument("--title", default="")
    p.add_argument("--target", type=float, default=50)
    p.add_argument("--min", dest="min_replicas", type=int, default=1)
    p.add_argument("--max", dest="max_replicas", type=int, default=10)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--llm-budget", default="")
    p.add_argument("--sync", type=float, default=2.0)
    args = p.parse_args()
    with open(args.csv) as f:
        ticks = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    draw(ticks, args, args.png)


if __name__ == "__main__":
    main()
