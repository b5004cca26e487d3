"""The W&B backend: sweeps and agent jobs, credentials, progress, ``clean`` and ``sync``. Nothing here imports
``wandb`` at module level: only the code paths that talk to W&B do."""
