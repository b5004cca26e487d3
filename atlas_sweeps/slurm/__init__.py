"""Everything Slurm: job states, ``squeue``/``sacct`` command builders and their parsers, array ids, and
``sbatch`` submissions as data. Pure: the commands run through a ``Remote`` elsewhere."""
