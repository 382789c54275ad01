"""Benchmarks: each script prints its figures; run them with `make bench` (python -m bench.NAME)."""
