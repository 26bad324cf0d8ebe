"""Benchmarks: a synthetic cluster generator, a replay slurmrestd and the benchmark runner."""
