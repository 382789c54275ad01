"""Watching the hotline live: the per-level and per-desk picture, alarms, and the gauges
Prometheus scrapes (counters are counted where events happen: hotline_core.metrics)."""
