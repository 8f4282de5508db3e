"""Draws the simulation's ticks: queue and throughput above, replicas below."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def draw(ticks, args, path):
    t = [row["t"] for row in ticks]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 5), dpi=100)
    title = args.title or (
        f"target {args.target:g} tasks/replica, {args.min_replicas}-{args.max_replicas} replicas "
        f"× concurrency {args.concurrency}"
        + (f", llm.max_concurrency {args.llm_budget}" if args.llm_budget else "")
    )
    fig.suptitle(title, fontsize=11)

    top.plot(t, [row["depth"] for row in ticks], color="tab:blue", label="queue depth")
    top.set_ylabel("queue depth", color="tab:blue")
    top.set_ylim(bottom=0)
    rate = top.twinx()
    rate.plot(t, [row["rate"] for row in ticks], color="tab:green", label="tasks finished/s")
    rate.set_ylabel("tasks finished/s", color="tab:green")
    rate.set_ylim(bottom=0)
    top.grid(alpha=0.3)

    bottom.step(t, [row["replicas"] + row["terminating"] for row in ticks], where="post",
                color="tab:gray", alpha=0.5, label="replicas + terminating")
    bottom.step(t, [row["replicas"] for row in ticks], where="post", color="tab:red",
                label="replicas")
    bottom.set_ylabel("worker replicas")
    bottom.set_ylim(0, args.max_replicas + 1)
    bottom.set_xlabel(f"seconds (sync period {args.sync:g} s)")
    calls = bottom.twinx()
    calls.plot(t, [row["llm_in_flight"] for row in ticks], color="tab:purple", alpha=0.6,
               label="LLM calls in flight")
    calls.set_ylabel("LLM calls in flight", color="tab:purple")
    calls.set_ylim(0, (args.max_replicas + 1) * args.concurrency)
    handles = bottom.get_legend_handles_labels()[0] + calls.get_legend_handles_labels()[0]
    bottom.legend(handles=handles, loc="upper right", fontsize=8)
    bottom.grid(alpha=0.3)

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
