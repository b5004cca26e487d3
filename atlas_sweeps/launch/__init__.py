"""``launch``: the plan of a composite file, the remote layout of a launch, job scripts, the preflight and
submit scripts, resume's view of the cluster, the ``Launcher`` service that runs them, and what it prints."""
