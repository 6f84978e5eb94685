"""Running Hessian jobs at scale: job arrays over checkpoint steps, and merging their results.

* :mod:`analyses.driver.jobs.slurm` — ``landscape jobs submit``: one submitit job array over
  chunks of steps (Slurm, a dry run that prints the sbatch scripts, or the local
  executor); each task runs ``landscape hessian`` (under ``torchrun`` when it has
  several GPUs) into its own ``RESULTS.partN.h5``.
* :mod:`analyses.driver.jobs.merge` — ``landscape jobs merge``: copy the parts' complete items
  into ``RESULTS.h5`` (idempotent; parts from another run are refused).

Data parallelism inside one task (``torchrun``) lives in :mod:`analyses.driver.distributed`.
See ``docs/hessian-jobs.md``.
"""
