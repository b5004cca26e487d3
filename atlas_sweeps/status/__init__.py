"""``status``, ``ls`` and ``tail``: the one poll per refresh (``poll``) and the ``Poller`` that runs it and
records what it saw (``poller``, ``stored``), the value objects it builds (``model``), the views of them from
one column spec (``columns``, ``view``, ``plain``, ``document``, ``listing``), the refresh loops
(``refresh``), and log following (``tail``, ``tail_output``, ``job_target``)."""
