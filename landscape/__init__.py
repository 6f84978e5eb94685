"""Landscape: loss landscapes and Hessian spectra of neural networks.

Notation used throughout the package:

* ``P`` — number of parameters; θ is a flat float vector of shape ``(P,)``.
* ``N`` — number of examples in the data set the objective averages over.
* ``k`` — number of eigenpairs or directions; blocks of vectors are ``(k, P)``.
* ``H`` — the Hessian of the full-dataset mean loss at θ; ``Hv`` a Hessian-vector product (HVP).

Public API (docs/contracts.md)::

    import landscape as ls
    obj = ls.Objective(model, inputs, targets, loss="cross_entropy", batch_size=1024, bn="eval")
    H = obj.hessian(obj.theta)
    res = ls.eigsh(H, k=20, which="LA", tol=1e-6, seed=0)
    dens = ls.spectral_density(H, num_probes=10, num_iters=100, seed=0)
    tr = ls.trace(H, num_matvecs=300, method="hutch++", seed=0)

Names are resolved lazily (PEP 562), so ``import landscape`` is cheap and a
submodule can be imported on its own.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    # objective and curvature operators
    "Objective": "landscape.objective",
    "HessianOperator": "landscape.curvature",
    "GGNOperator": "landscape.curvature",
    "dense_hessian": "landscape.curvature",
    # generic operators
    "LinearOperator": "landscape.operators",
    "DenseOperator": "landscape.operators",
    "as_operator": "landscape.operators",
    # solvers
    "lanczos": "landscape.solvers",
    "eigsh": "landscape.solvers",
    "EigshResult": "landscape.solvers",
    "spectral_density": "landscape.solvers",
    "SpectralDensity": "landscape.solvers",
    "trace": "landscape.solvers",
    "TraceEstimate": "landscape.solvers",
    "power_iteration": "landscape.solvers",
    # directions in parameter space
    "directions": "landscape.directions",
    # parameters, models, data
    "ParamSpec": "landscape.params",
    "build_model": "landscape.models",
    "load_dataset": "landscape.datasets",
    # errors
    "LandscapeError": "landscape.errors",
    "InputError": "landscape.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        module = import_module(_EXPORTS[name])
        return module if module.__name__.endswith("." + name) else getattr(module, name)
    raise AttributeError(f"module 'landscape' has no attribute {name!r}")


def __dir__():
    return __all__
