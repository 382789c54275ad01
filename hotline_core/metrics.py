"""Every Prometheus metric `hotline serve` counts where the event happens, named once.

Counters and histograms live here; gauges of state that already exists elsewhere (the live
queue model, Redis and PostgreSQL reachability, the age of tier tables, today's figures) are
collected at scrape time by `hotline.monitor`, not kept twice. Label sets are bounded: tiers,
levels, desks, statuses; never a number or a linkedid.

With several worker processes, prometheus-client's multiprocess mode keeps each worker's values
in files that `/metrics` sums (see `enable_multiprocess`).
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector

LOOKUP_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, multiprocess_dir: str | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        # Set when several processes count (workers, a separate pages process): totals are theirs summed.
        self.multiprocess_dir = multiprocess_dir
        r = self.registry
        self.call_entries = Counter("hotline_call_entries", "Call entries, by the tier fixed and the access level",
                                    ["tier", "level"], registry=r)
        self.lookup_seconds = Histogram("hotline_lookup_seconds", "Tier lookup time at call entry",
                                        buckets=LOOKUP_BUCKETS, registry=r)
        self.degraded_lookups = Counter("hotline_degraded_lookups", "Lookups that gave up (Redis slow or away): "
                                        "the caller was served as normal", registry=r)
        self.agi_open = Gauge("hotline_agi_sessions_open", "FastAGI sessions open now", registry=r,
                              multiprocess_mode="livesum")
        self.agi_refused = Counter("hotline_agi_sessions_refused", "FastAGI connections refused (too many at once)",
                                   registry=r)
        self.sms = Counter("hotline_sms", "SMS jobs by what became of them (queued, sent, delivered, failed, dead)",
                           ["status"], registry=r)
        self._entry_children: dict[tuple[str, str], Counter] = {}
        # Per background component (a bounded set of names: the loops `hotline serve` runs).
        self.component_restarts = Counter("hotline_component_restarts", "Restarts of a background component after "
                                          "it failed unexpectedly", ["component"], registry=r)
        self.component_up = Gauge("hotline_component_up", "1 while a background component runs, 0 while it waits "
                                  "to restart", ["component"], registry=r, multiprocess_mode="livemin")
        self.quarantined = Counter("hotline_quarantined", "Items set aside because they could not be processed "
                                   "(records quarantine, SMS dead letters), by component", ["component"], registry=r)
        self.ami_up = Gauge("hotline_ami_link_up", "1 while the AMI bridge is logged in to Asterisk", registry=r,
                            multiprocess_mode="livemax")

    def count_entry(self, tier: str, level: str, lookup_s: float, degraded: bool) -> None:
        """One call entry: its tier and level, its lookup time, whether it was degraded.
        The labelled child is kept per (tier, level): looking it up through `labels()` at every
        entry cost as much as the counting itself."""
        child = self._entry_children.get((tier, level))
        if child is None:
            child = self._entry_children[(tier, level)] = self.call_entries.labels(tier, level)
        child.inc()
        self.lookup_seconds.observe(lookup_s)
        if degraded:
            self.degraded_lookups.inc()

    def totals(self, *samples: str) -> dict[str, float]:
        """Counters' totals over all their labels and every process counting (for alarms on
        rates), from one collection: with several processes each collection reads their files."""
        registry = self.registry
        if self.multiprocess_dir:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]  # registers itself
        found = dict.fromkeys(samples, 0.0)
        for metric in registry.collect():
            for sample in metric.samples:
                if sample.name in found:
                    found[sample.name] += sample.value
        return found


def enable_multiprocess(directory: Path) -> None:
    """Before the workers fork: each will keep its values in files under `directory`, which
    `/metrics` sums. prometheus-client picks its value store when first imported, so the choice
    is made again here, explicitly."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()  # values of an earlier run's processes
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)  # the library's own switch
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]  # (untyped upstream)
