"""The commit frontier of an append log: the one place a killed writer can tear a chunk.

A run file's logs grow by appending rows into fletcher32-checksummed chunks. HDF5 writes
a chunk whole and in place; a process killed during that write (SIGKILL, a preempted
job) can leave it half new and half old, since the kernel stops a large write between
pages. The rows below the last commit are the same bytes in the old and new versions,
so they survive the tear, but the checksum stored at the end of the chunk no longer
matches its bytes. Only the row block that straddles the commit frontier can be torn
this way: a block wholly below it was flushed at a commit and is never written again,
so a checksum failure there is damage and is refused as before.

So that the committed rows of a torn block are still verified, every commit also stores,
per log dataset, ``(committed rows, digest of the committed rows of the frontier block)``
in ``/frontier`` — written after the rows are flushed and in the same flush as
``/committed``. A tear happens only while rows are written (after a complete commit, or
in the first flush of the next one), so the record then always describes the committed
count a reader sees.

* :func:`read_rows` reads committed rows through the checksum; when that fails in the
  frontier block, that block's committed rows are taken from the raw chunk bytes and
  checked against the record, and every row below it is still read through HDF5.
* :func:`reseal` (on resume) checks a torn frontier chunk the same way and stores a fresh
  checksum over it in place, so the writer can append into it again. A kill during the
  reseal leaves the same torn chunk behind, so it is safe to repeat.

Files written before ``/frontier`` existed have no record: their torn rows are read
unverified, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import struct
import warnings

import h5py
import numpy as np

from landscape.errors import CheckpointCorruptError

TABLE = "frontier"  # int64 (n_logs, 2): committed rows, digest; attribute "datasets" names the rows
CHECKSUM_BYTES = 4  # fletcher32 appends a 4-byte little-endian checksum to each chunk
_WORDS_PER_BLOCK = 1 << 20  # Σ j·w_j over a block stays below 2^56


def fletcher32(data: bytes) -> int:
    """HDF5's Fletcher-32 checksum of ``data`` (``H5_checksum_fletcher32``).

    The bytes are read as big-endian 16-bit words ``w₁ … w_n`` (an odd length is padded
    with a zero byte); ``sum1 = Σ wᵢ`` and ``sum2 = Σᵢ (n − i + 1)·wᵢ`` (the running sum of
    sum1), each folded to 16 bits by end-around carry (arithmetic mod 65535 that never
    yields 0 for a non-zero sum); the checksum is ``sum2 << 16 | sum1`` (Fletcher 1982).
    """
    b = np.frombuffer(data, np.uint8)
    if len(b) % 2:
        b = np.append(b, np.uint8(0))
    words = (b[0::2].astype(np.uint64) << np.uint64(8)) | b[1::2]
    n, sum1, sum2 = len(words), 0, 0
    for o in range(0, n, _WORDS_PER_BLOCK):  # exact integer sums of any length (no uint64 overflow)
        w = words[o:o + _WORDS_PER_BLOCK]
        block_sum = int(w.sum(dtype=np.uint64))
        sum1 += block_sum
        sum2 += (n - o) * block_sum - int((np.arange(len(w), dtype=np.uint64) * w).sum(dtype=np.uint64))
    return (_fold(sum2) << 16) | _fold(sum1)


def _fold(x: int) -> int:
    while x >> 16:
        x = (x & 0xFFFF) + (x >> 16)
    return x


def read_rows(ds: h5py.Dataset, a: int, b: int, committed: int, record=None) -> np.ndarray:
    """Rows ``a … b-1`` of an append log with ``committed`` committed rows (``b ≤ committed``).

    ``record`` is the dataset's ``(rows, digest)`` from :func:`read_table` (None: none kept).
    Raises the HDF5 error unchanged when the checksum failure is not in the frontier block
    (or the chunks are not plain fletcher32 ones), so real damage is still reported.
    """
    try:
        return ds[a:b]
    except OSError as e:
        start = frontier_start(ds, committed)
        if not is_checksum_failure(e) or start is None or b <= start or not _plain_fletcher32(ds):
            raise
    head = ds[a:start] if a < start else ds[0:0]
    block = committed_block(ds, committed, record)
    return np.concatenate([head, block[max(a, start) - start:b - start]])


def reseal(ds: h5py.Dataset, committed: int, record=None) -> bool:
    """Give a torn frontier chunk of ``ds`` a fresh checksum (its committed rows checked first).

    Returns whether any chunk was resealed. Raises CheckpointCorruptError where the
    committed rows do not match their record (damage, not a tear).
    """
    start = frontier_start(ds, committed)
    if start is None or not _plain_fletcher32(ds):
        return False
    torn = [o for o in _block_offsets(ds, start) if _is_torn(ds, o)]
    if torn:
        committed_block(ds, committed, record)
    for offset in torn:
        data = _chunk_bytes(ds, offset)
        ds.id.write_direct_chunk(offset, data + struct.pack("<I", fletcher32(data)), 0)
    return bool(torn)


def committed_block(ds: h5py.Dataset, committed: int, record) -> np.ndarray:
    """The committed rows of the frontier block from the raw chunk bytes, checked against ``record``."""
    start = frontier_start(ds, committed)
    rows = _raw_rows(ds, start, committed, start)
    if record is None:
        warnings.warn(f"{ds.file.filename}: rows {start}-{committed - 1} of {ds.name} were read without "
                      "a checksum (a killed writer tore their chunk, and the file predates /frontier "
                      "records); resume the run to reseal it", RuntimeWarning, stacklevel=3)
    elif tuple(record) != (committed, digest(rows)):
        raise CheckpointCorruptError(
            f"checksum (fletcher32) failed reading {ds.file.filename} (object {ds.name!r}) and its "
            f"committed rows {start}-{committed - 1} do not match their /{TABLE} record: stored data "
            "were altered on disk; restore the file from a copy or recreate it")
    return rows


def digest(rows: np.ndarray) -> int:
    """The first 8 bytes of the SHA-256 of ``rows`` (C order), as a signed int64."""
    raw = hashlib.sha256(np.ascontiguousarray(rows).tobytes()).digest()[:8]
    return int.from_bytes(raw, "little", signed=True)


EMPTY_DIGEST = digest(np.zeros(0, np.uint8))


# --- the /frontier table ------------------------------------------------------------------
def create_table(f: h5py.File, groups) -> None:
    """Create ``/frontier`` with one row per dataset of ``groups`` (all-zero: nothing committed)."""
    names = [ds.name for g in groups for ds in f[g].values()]
    table = f.create_dataset(TABLE, data=np.zeros((len(names), 2), np.int64))
    table.attrs["datasets"] = json.dumps(names)


class FrontierTable:
    """The writer's view of ``/frontier``: rows of logs whose count changed are recomputed.

    A log's digest needs a read of at most one chunk's committed rows (from HDF5's chunk
    cache, just flushed); logs with one row per chunk (snapshot vectors) have no frontier
    block and need none.
    """

    def __init__(self, f: h5py.File):
        self._table = f[TABLE]
        names = json.loads(self._table.attrs["datasets"])
        self._logs = [(f[name], name.strip("/").split("/")[0], f[name].chunks[0]) for name in names]
        self._rows = self._table[()]

    def write(self, counts: dict[str, int]) -> None:
        """Record each log's committed rows and the digest of its frontier block's committed rows."""
        changed = False
        for i, (ds, group, chunk_rows) in enumerate(self._logs):
            n = counts[group]
            if self._rows[i, 0] != n:
                start = n - n % chunk_rows
                self._rows[i] = (n, digest(ds[start:n]) if n % chunk_rows else EMPTY_DIGEST)
                changed = True
        if changed:
            self._table[...] = self._rows


def read_table(f: h5py.File) -> dict[str, tuple[int, int]]:
    """``{dataset name: (rows, digest)}``; empty for a file written before ``/frontier``."""
    if TABLE not in f:
        return {}
    table = f[TABLE]
    return {name: (int(n), int(d)) for name, (n, d) in zip(json.loads(table.attrs["datasets"]), table[()])}


def frontier_start(ds: h5py.Dataset, committed: int) -> int | None:
    """First row of the chunk row block holding both committed and uncommitted rows (None if none)."""
    rows = ds.chunks[0]
    return None if committed % rows == 0 else committed - committed % rows


def is_checksum_failure(e: BaseException) -> bool:
    """Whether an h5py error is a failed filter (for our files: a fletcher32 mismatch)."""
    return "filter returned failure" in str(e)


def _plain_fletcher32(ds: h5py.Dataset) -> bool:
    """Whether fletcher32 is the chunks' only filter (the raw bytes are then data + checksum)."""
    dcpl = ds.id.get_create_plist()
    return dcpl.get_nfilters() == 1 and dcpl.get_filter(0)[0] == h5py.h5z.FILTER_FLETCHER32


def _block_offsets(ds: h5py.Dataset, start: int) -> list[tuple[int, ...]]:
    """Chunk offsets of the row block at ``start`` (several when a row spans column chunks)."""
    if ds.ndim == 1:
        return [(start,)]
    return [(start, c) for c in range(0, max(ds.shape[1], 1), ds.chunks[1])]


def _chunk_bytes(ds: h5py.Dataset, offset) -> bytes | None:
    """The chunk's stored data without its checksum; None where the chunk was never written."""
    info = ds.id.get_chunk_info_by_coord(offset)
    if info.byte_offset is None:
        return None
    _, raw = ds.id.read_direct_chunk(offset)
    return raw[:-CHECKSUM_BYTES]


def _is_torn(ds: h5py.Dataset, offset) -> bool:
    """Whether the chunk at ``offset`` exists and fails its stored fletcher32."""
    if ds.id.get_chunk_info_by_coord(offset).byte_offset is None:
        return False
    _, raw = ds.id.read_direct_chunk(offset)
    return struct.unpack("<I", raw[-CHECKSUM_BYTES:])[0] != fletcher32(raw[:-CHECKSUM_BYTES])


def _raw_rows(ds: h5py.Dataset, a: int, b: int, start: int) -> np.ndarray:
    """Rows ``a … b-1`` of the block at ``start``, from the raw chunk bytes (fill where unwritten)."""
    block = np.full((ds.chunks[0], *ds.shape[1:]), ds.fillvalue, dtype=ds.dtype)
    for offset in _block_offsets(ds, start):
        data = _chunk_bytes(ds, offset)
        if data is None:
            continue
        chunk = np.frombuffer(data, ds.dtype).reshape(ds.chunks)
        if ds.ndim == 1:
            block[:] = chunk
        else:
            c = offset[1]
            block[:, c:c + ds.chunks[1]] = chunk[:, :ds.shape[1] - c]
    return block[a - start:b - start]
