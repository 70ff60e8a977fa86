"""Benchmarks: `python bench/run.py` starts one private deployment and prints figures."""
