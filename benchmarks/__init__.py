"""Benchmarks: `make bench` or `python -m benchmarks [NAME ...]`; figures go in RESULTS.md."""
