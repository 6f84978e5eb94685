"""The driver: runs analyses over a run's checkpoints and writes what they compute.

* :mod:`~analyses.driver.runner` — items (key + compute), resumable writing with provenance;
* :mod:`~analyses.driver.inputs` — the opened run, the chosen steps, device, dtype and the
  one way to build an :class:`~landscape.Objective` at a step (through ``Run.objective``);
* :mod:`~analyses.driver.eigen` — the eigenpairs ``landscape hessian`` stored, read and checked;
* :mod:`~analyses.driver.settings` — the one check that refuses to mix results of other settings;
* :mod:`~analyses.driver.steps` — the ``--steps`` grammar;
* :mod:`~analyses.driver.progress` — progress bars;
* :mod:`~analyses.driver.distributed` and :mod:`~analyses.driver.jobs` — torchrun data
  parallelism and Slurm job arrays.

Analyses (``analyses/<name>.py``) compute; the driver opens files, builds objectives and
writes records; the command line (``analyses/cli``) only turns arguments into configs.
"""
