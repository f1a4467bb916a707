"""Benchmarks: scripts that print figures and write JSON to benchmarks/results/."""
