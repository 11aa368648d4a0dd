"""Benchmarks (`make bench`): upstream-call cost, cache-hit latency, single-flight, imports."""
