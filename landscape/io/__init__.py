"""landscape.io: the run and results files (the only package that imports h5py).

Public API::

    from landscape.io import provenance, RunWriter, RunFile, ResultsFile, file_kind, sha256_array, step_key

* :class:`RunWriter` — the trainer's append-only log of one run (parameter snapshots with
  checksums, minibatch indices, augmentation seeds, metrics), committed in units that
  survive a SIGKILL; ``mode="create" | "resume" | "overwrite"``.
* :class:`RunFile` — a read-only, checksum-verifying view of the committed part of a run
  file, usable while training goes on.
* :class:`ResultsFile` — analysis outputs, one resumable group per item, bound to its run;
  :func:`step_key` names a per-step item and ``ResultsFile.items``/``by_step`` list them
  by step (the only place that knows how keys are spelled).
* :func:`file_kind` — ``"run"`` or ``"results"``; :func:`provenance` — software, machine,
  command and source tree; :func:`sha256_array` — the checksum used for stored vectors.

Layouts: ``landscape.io.schema`` and ``docs/file-formats.md``. Readers open files with
``locking=False`` (so they work while a writer holds the HDF5 file lock); writers keep the
lock, honouring ``HDF5_USE_FILE_LOCKING`` (set it to ``BEST_EFFORT`` on file systems
without locks). Files refer to nothing outside themselves: external links, soft links,
external storage, virtual datasets and plugin filters are refused (UnsafeFileError).
"""

from __future__ import annotations

import os

from landscape.io import _h5, schema
from landscape.io._h5 import sha256_array
from landscape.io.provenance import provenance
from landscape.io.results import ResultsFile, step_key
from landscape.io.runfile import RunFile
from landscape.io.runwriter import RunWriter


def file_kind(path) -> str:
    """``"run"`` or ``"results"``, from the root attribute ``schema`` of the file.

    Raises:
        FileFormatError: missing, damaged or not a landscape file (or a newer version).
        UnsafeFileError: the file refers to other files or needs plugins.
    """
    path = os.fspath(path)
    with _h5.open_read(path) as f:
        return schema.FILE_KINDS[_h5.read_schema(f, path)]


__all__ = ["RunWriter", "RunFile", "ResultsFile", "file_kind", "provenance", "sha256_array", "schema", "step_key"]
