"""Running nodes locally: ``splay run`` (one process per node, or all in one) and the node runners.

- :mod:`splay.launch.node`: ``python -m splay.launch.node APP.py [args...]`` runs one node: it reads
  the job from ``SPLAY_JOB``, sets ``splay.job`` and runs the application as ``__main__``.
- :mod:`splay.launch.in_process`: the process that hosts every node of ``splay run --in-process``.
- :mod:`splay.launch.run_cmd`: the ``splay run`` command, built from :mod:`~splay.launch.options`
  (command line), :mod:`~splay.launch.processes` (node processes, signals, no orphans),
  :mod:`~splay.launch.output` (prefixed output, merged log) and :mod:`~splay.launch.progress`.
"""
