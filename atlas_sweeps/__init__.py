"""atlas-sweeps: launch W&B hyperparameter sweeps as Slurm jobs from one composite sweep file."""

__version__ = "0.1.0"
