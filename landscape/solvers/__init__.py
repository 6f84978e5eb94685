"""Solvers: pure linear algebra on a symmetric operator (they never see a model).

Every solver takes an operator from :mod:`landscape.operators`, a dense symmetric
tensor, or a matvec callable with ``dim=P``, and returns raw, storable results:

* :func:`lanczos` — float64 Lanczos with full reorthogonalization: the tridiagonal and basis.
* :func:`eigsh` — k certified eigenpairs (thick-restart Lanczos; ``which`` = LA, SA, LM, BE).
* :func:`spectral_density` — SLQ quadrature nodes and weights; the density for any σ afterwards.
* :func:`trace` — Hutch++ or Hutchinson, with a standard error and the samples.
* :func:`power_iteration` — PyHessian-style deflated power iteration (a baseline).
"""

from landscape.solvers.eigsh import EigshResult, eigsh
from landscape.solvers.lanczos import LanczosResult, lanczos
from landscape.solvers.power import power_iteration
from landscape.solvers.sampling import probe_vectors
from landscape.solvers.slq import SpectralDensity, spectral_density
from landscape.solvers.trace import TraceEstimate, hutchinson_trace, hutchpp_trace, trace

__all__ = ["EigshResult", "LanczosResult", "SpectralDensity", "TraceEstimate", "eigsh", "hutchinson_trace",
           "hutchpp_trace", "lanczos", "power_iteration", "probe_vectors", "spectral_density", "trace"]
