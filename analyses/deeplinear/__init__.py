"""Deep linear networks: exact landscapes, gradient-descent regimes, depth × η × init, Saxe's solution.

The studies of seed 004 (Saxe's lecture "Learning hyperparameters", Neuromatch Academy W1D2)
and of Saxe, McClelland & Ganguli (ICLR 2014), run through the toolkit's Objective, solvers and
update rule and checked against closed forms. User guide: ``docs/deeplinear.md``.

Modules (no file I/O here; :mod:`.records` lists the results items the command writes):

* :mod:`.config` — frozen configurations with their checks (``StudyConfig`` and one per study);
* :mod:`.data` — y = a·x + noise and its moments; whitened inputs with an exact SVD target;
* :mod:`.product` — closed-form loss, gradient and Hessian of y = (Π wᵢ)·x;
* :mod:`.narrow` — study 1 through the Objective: grid, gradient field, paths, critical points;
* :mod:`.tracker`, :mod:`.descent`, :mod:`.wide` — batched gradient descent (narrow and wide nets),
  learning times, divergence, racing over learning rates;
* :mod:`.regimes` — study 2: regime labels from η against 2/λ_max along the path;
* :mod:`.depth` — study 3: best η and learning time per depth, the initialisation sweep;
* :mod:`.saxe`, :mod:`.saxe_depth` — study 4: mode strengths against u(t), depth with random vs
  orthogonal init;
* :mod:`.page` — the depth × η × init grid behind the interactive page;
* :mod:`.records` — the named records (one per results item) of each study.
"""
