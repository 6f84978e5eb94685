"""Hyperparameter optimisation by hypergradients through training (seeds 000, 001; user guide:
docs/hyperparameter-optimisation.md).

Maclaurin, Duvenaud & Adams (ICML 2015) optimise hyperparameters no grid search could reach — a
learning rate per step, an initial weight distribution per layer, an L2 penalty per weight, the training
examples themselves — by gradient descent on the validation loss after training, dL_val(θ_T(h))/dh
(:mod:`landscape.hyper`). This package runs that meta-loop as the seeds' four studies (recipes,
:mod:`~analyses.hyper_optimize.config`):

* ``schedule`` — a learning rate per step (optionally per layer), against the best constant rate;
* ``init`` — per-layer initial weight distributions (monotone quantile functions: every bin has mass);
* ``ard`` — per-weight L2 penalties on logistic regression (automatic relevance determination);
* ``distill`` / ``distill_fixed`` — one training example per class (and the learning rates) such that a
  freshly initialised net trained on them alone does best on validation data (Wang et al. 2018).

Results (written by the command, one item per meta-iteration, so a killed run resumes):
``hyperopt/<recipe>/iter_NNNNN`` (:class:`~analyses.hyper_optimize.work.OptimizeWork`) and, once every
meta-iteration is in, ``hyperopt/<recipe>/evaluation`` (:mod:`~analyses.hyper_optimize.evaluate`).
Nothing here opens a file.
"""

from analyses.hyper_optimize.config import RECIPE_NAMES, RECIPES, OptimizeConfig, recipe
from analyses.hyper_optimize.evaluate import evaluate
from analyses.hyper_optimize.work import (MetaState, OptimizeWork, ProblemData, choose_route, eval_seeds,
                                          evaluation_key, iteration_key, iteration_seeds)

__all__ = [
                                          "RECIPES",
                                          "RECIPE_NAMES",
                                          "MetaState",
                                          "OptimizeConfig",
                                          "OptimizeWork",
                                          "ProblemData",
                                          "choose_route",
                                          "eval_seeds",
                                          "evaluate",
                                          "evaluation_key",
                                          "iteration_key",
                                          "iteration_seeds",
                                          "recipe",
]
