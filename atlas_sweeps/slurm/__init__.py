"""Everything Slurm, pure (the commands run through a ``Remote`` elsewhere): one table of job states
(``states``), array ids (``array_ids``), ``squeue``/``sacct``/``scontrol``/``scancel`` command builders and
their parsers (fields by name), the merge of what they say into one state per task, and ``sbatch``
submissions as data."""
