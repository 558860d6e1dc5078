"""Benchmark harnesses for facegate (run with ``python -m bench <command>``)."""
