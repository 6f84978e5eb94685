"""``python -m landscape`` (and ``torchrun -m landscape``) runs the command line.

This shim is the entry point, not part of the numerical core: it hands over to
``analyses.cli`` by name so that the core's import graph stays one-way.
"""

import importlib
import sys

if __name__ == "__main__":
    sys.exit(importlib.import_module("analyses.cli").main())
