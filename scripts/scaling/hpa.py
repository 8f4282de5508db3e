"""The HorizontalPodAutoscaler's replica calculation, as Kubernetes documents it.

One `Hpa.recommend()` per sync period, for one External metric with an
AverageValue target (what the chart renders for a worker pool):

1. raw:       ratio = metric / (target × current); inside the tolerance
              (|ratio − 1| ≤ 0.1) keep `current`, else ceil(metric / target),
              which is ceil(current × (metric / current) / target);
2. stabilise: scale up to the lowest recommendation of the scale-up window,
              down only to the highest of the scale-down window;
3. rate:      at most the policies' change per period (scale-up: the larger
              of +100% and +4 pods per period; scale-down: −50% per period);
4. clamp:     to [minReplicas, maxReplicas].

Times are in seconds; the caller scales them (see autoscale-sim.sh).
"""

import math
from dataclasses import dataclass, field


@dataclass
class Behavior:
    scale_up_window: float = 0.0
    scale_down_window: float = 300.0
    up_percent: float = 100.0
    up_pods: int = 4
    up_period: float = 30.0
    down_percent: float = 50.0
    down_period: float = 60.0

    def scaled(self, factor):
        """Every duration multiplied by `factor` (e.g. 2/15 for a 2 s sync period)."""
        return Behavior(
            self.scale_up_window * factor,
            self.scale_down_window * factor,
            self.up_percent,
            self.up_pods,
            self.up_period * factor,
            self.down_percent,
            self.down_period * factor,
        )


@dataclass
class Hpa:
    target: float
    min_replicas: int
    max_replicas: int
    behavior: Behavior
    tolerance: float = 0.1
    recommendations: list = field(default_factory=list)  # (time, replicas)
    events: list = field(default_factory=list)  # (time, change): +n up, -n down

    def raw(self, metric, current):
        if current == 0:
            return max(1, math.ceil(metric / self.target))
        ratio = metric / (self.target * current)
        if abs(ratio - 1.0) <= self.tolerance:
            return current
        return math.ceil(metric / self.target)

    def recommend(self, now, metric, current):
        """Desired replicas at time `now` for the metric's total value."""
        raw = self.raw(metric, current)
        self.recommendations.append((now, raw))
        horizon = max(self.behavior.scale_up_window, self.behavior.scale_down_window)
        self.recommendations = [(t, r) for t, r in self.recommendations if now - t <= horizon]
        up = min(r for t, r in self.recommendations if now - t <= self.behavior.scale_up_window)
        down = max(r for t, r in self.recommendations if now - t <= self.behavior.scale_down_window)
        desired = current
        if desired < up:
            desired = up
        if desired > down:
            desired = down
        desired = self.rate_limited(now, current, desired)
        desired = min(max(desired, self.min_replicas), self.max_replicas)
        if desired != current:
            self.events.append((now, desired - current))
        return desired

    def rate_limited(self, now, current, desired):
        b = self.behavior
        if desired > current:
            added = sum(c for t, c in self.events if c > 0 and now - t < b.up_period)
            start = current - added
            limit = max(math.ceil(start * (1 + b.up_percent / 100)), start + b.up_pods)
            return min(desired, limit)
        if desired < current:
            removed = -sum(c for t, c in self.events if c < 0 and now - t < b.down_period)
            start = current + removed
            limit = math.ceil(start * (1 - b.down_percent / 100))
            return max(desired, limit)
        return desired
