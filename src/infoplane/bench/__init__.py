"""Benchmarks that print figures (run as ``python -m infoplane.bench.<name>``); not timed tests."""
