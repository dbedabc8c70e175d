"""Benchmarks: `python bench/full_scale.py` runs them, `python bench/report.py` re-prints the table."""
