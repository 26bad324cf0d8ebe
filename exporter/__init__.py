"""slurm-exporter: Prometheus metrics from Slurm's REST daemon (slurmrestd)."""

__version__ = "0.1.0"
