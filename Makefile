# Landscape: the two commands of the README, plus a few for developers.
#   make demo   create .venv, install, run the whole study on MNIST-1D
#   make test   create .venv, install, run the test suite (CPU, no GPU needed)
#
# torch: if the Python that creates the environment already has torch, the venv
# sees it (--system-site-packages) and it is never replaced. Otherwise we install
# $(TORCH_SPEC); on our machines `torch==2.13.0` resolves to a local CPU wheel.
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT   ?= demo-out
PY          = $(VENV)/bin/python
STAMP       = $(VENV)/.installed

.PHONY: demo test test-all test-portable bench bench-quick venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
	    echo "using the torch already installed for $(PYTHON) (not replaced)"; \
	    $(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
	    $(PYTHON) -m venv $(VENV) && $(PY) -m pip install -q "$(TORCH_SPEC)"; \
	fi
	$(PY) -m pip install -q -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/landscape demo --out $(DEMO_OUT) --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m "" 

# The default suite on other kernels than this CPU picks: ATen without SIMD and MKL limited to
# SSE4.2, so float rounding differs from the AVX-512/AVX2 paths. A tolerance that only one CPU
# vendor's rounding satisfies fails here (our tolerances are tied to the dtype, not to a CPU).
test-portable: $(STAMP)
	ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 $(PY) -m pytest -q

# Peers for the side-by-side benchmarks: PyHessian and hessian-eigenthings from the `bench`
# extra; curvlinops with --no-deps (its backpack-for-pytorch dependency pulls torchvision, which
# would replace a CPU torch with a CUDA one). The last line shows torch was left alone.
bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m pip install -q --no-deps curvlinops-for-pytorch einops einconv opt-einsum linear_operator jaxtyping backpack-for-pytorch unfoldNd
	$(PY) -c "import torch; print('torch', torch.__version__)"
	$(PY) bench/run.py

bench-quick: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m pip install -q --no-deps curvlinops-for-pytorch einops einconv opt-einsum linear_operator jaxtyping backpack-for-pytorch unfoldNd
	$(PY) -c "import torch; print('torch', torch.__version__)"
	$(PY) bench/run.py --quick

clean:
	rm -rf $(VENV) build *.egg-info
