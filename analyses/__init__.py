"""Analyses of loss landscapes over a run's checkpoints, and the ``landscape`` command line.

* ``analyses/<name>.py`` (and ``linesearch/``) — one analysis each: config, computation, result schema;
* :mod:`analyses.driver` — runs them: inputs, stored eigenpairs, settings checks, resumable writing;
* :mod:`analyses.cli` — the command line, one thin module per subcommand;
* :mod:`analyses.plots` and :mod:`analyses.output` — figures and the report, from stored results.
"""
