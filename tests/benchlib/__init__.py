"""Shared scaffolding for the MuseWire benchmarks (tests/bench_wire.py).

The workload is exactly ../shared/WORKLOAD.md: tiers, deterministic content, the history, and
how every verb is seeded, so that our figures and git's are measured on the same data.
"""
