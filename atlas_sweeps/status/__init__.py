"""``status`` and ``tail``: the one poll per refresh, the model it builds, the views of it, and log following."""
