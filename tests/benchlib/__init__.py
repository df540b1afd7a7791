"""Shared scaffolding for the MuseWire benchmarks (tests/bench_wire.py).

The benchmark is defined in docs/benchmarks.md ("Definition"): the tiers, the deterministic
content and history, how every verb is seeded and what it times, and the gates. Our figures
and git's are measured on the same data.
"""
