"""Names and versions of the two file layouts (see ``docs/file-formats.md``).

Run file (one per training run, written by :class:`~landscape.io.RunWriter`)::

    /                       attrs: schema="landscape.run", schema_version, created (UTC ISO),
                                   run_sha256, meta (JSON), provenance (JSON), history (JSON),
                                   status, status_message, P, B, batch_size, full_batch
    /committed              int64 (4,)  committed rows of steps, snapshots, evals, sharpness
    /frontier               int64 (n_logs, 2)  per log dataset (attr "datasets"): committed rows,
                                   digest of the committed rows of its last chunk (see _frontier)
    /steps/step             int64 (n_steps,)                 0, 1, 2, ...
    /steps/batch_indices    int32 (n_steps, batch_size)      absent when full_batch or no batch log
    /steps/aug_seed         int64 (n_steps,)
    /steps/loss, /steps/lr  float64 (n_steps,)
    /snapshots/step         int64 (n_snap,)                  θ_s is taken *before* update s
    /snapshots/params       float32 (n_snap, P), chunks (1, P), fletcher32
    /snapshots/buffers      float32 (n_snap, B), chunks (1, B), fletcher32; absent when B == 0
    /snapshots/momentum     float32 (n_snap, P), chunks (1, P), fletcher32  (AdamW: first moment)
    /snapshots/second_moment float32 (n_snap, P), chunks (1, P), fletcher32 (AdamW; absent in older files)
    /snapshots/{params,buffers,momentum,second_moment}_sha256   S64 (n_snap,)  hex sha256 ("" = not saved)
    /evals/{step,train_loss,train_acc,test_loss,test_acc}       (n_evals,)
    /sharpness/step, /sharpness/lr (n_sharp,); /sharpness/eigenvalues float64 (n_sharp, k)

Every dataset is created when the file is created; appends only resize them. All but
``/committed`` and ``/frontier`` are chunked with the fletcher32 checksum filter. Readers trust the first
``committed[i]`` rows of group ``COUNTED_GROUPS[i]`` and ignore the rest.

Results file (analysis outputs, written by :class:`~landscape.io.ResultsFile`)::

    /                       attrs: schema="landscape.results", schema_version, created,
                                   run_id (JSON), provenance (JSON)
    /<a>/<b>/<c>            one group per item (key "a/b/c"); attrs: _item=True,
                            complete (bool, set last), _json (JSON list of JSON-coded attrs),
                            the item's attrs; datasets: its arrays
    /<item>/_done_<name>    uint8 (n_blocks,) for a block dataset <name> written in row blocks
"""

RUN_SCHEMA = "landscape.run"
RESULTS_SCHEMA = "landscape.results"
RUN_SCHEMA_VERSION = 1
RESULTS_SCHEMA_VERSION = 1
SCHEMA_VERSIONS = {RUN_SCHEMA: RUN_SCHEMA_VERSION, RESULTS_SCHEMA: RESULTS_SCHEMA_VERSION}
FILE_KINDS = {RUN_SCHEMA: "run", RESULTS_SCHEMA: "results"}

# --- run file ---------------------------------------------------------------------------
COMMITTED = "committed"
COUNTED_GROUPS = ("steps", "snapshots", "evals", "sharpness")  # order of /committed
STATUSES = ("running", "complete", "stopped", "diverged")

STEP_FIELDS = {"step": "int64", "aug_seed": "int64", "loss": "float64", "lr": "float64"}
BATCH_INDICES = "batch_indices"
BATCH_INDEX_DTYPE = "int32"
EVAL_FIELDS = ("step", "train_loss", "train_acc", "test_loss", "test_acc")
SNAPSHOT_VECTORS = ("params", "buffers", "momentum", "second_moment")  # each with a "<name>_sha256" column
# Snapshot vectors that files written before they existed lack (read as "never saved").
LATER_VECTORS = frozenset({"second_moment"})
SHA_DTYPE = "S64"
# Integer columns whose fill value is SENTINEL: a row read as -1 was never written (or was
# read through stale metadata of a live file) and is retried or reported, never returned.
SENTINEL = -1
SENTINEL_COLUMNS = frozenset({"step", BATCH_INDICES})

# Rows per chunk of the 1-D per-step logs: 8 KiB of float64, a handful of chunks per epoch.
STEP_CHUNK_ROWS = 1024
# Bytes per chunk of the batch-index log (rows of batch_size int32): ~256 KiB.
BATCH_CHUNK_BYTES = 1 << 18
# Rows per chunk of the eval/sharpness logs (a few hundred rows per run).
SMALL_CHUNK_ROWS = 256
# Columns per chunk of /sharpness/eigenvalues (k is fixed by the first append).
SHARPNESS_CHUNK_K = 16

# Config keys that may change when a run is resumed (e.g. training for longer); the
# rest of meta["config"] must be identical. Matched against the top-level key and the
# dotted path of nested keys. RunWriter(resumable=...) overrides this default.
RESUMABLE_CONFIG_KEYS = frozenset({
    "total_steps", "num_steps", "max_steps", "steps", "epochs", "num_epochs",
    "eval_every", "snapshot_every", "save_every", "log_every", "sharpness_every",
    "commit_every", "out", "output", "path", "resume", "overwrite", "device",
})
# Meta entries besides the config that fix what the stored rows mean; a resume must match.
IDENTITY_META_KEYS = ("model_name", "model_kwargs", "dataset_checksum", "seed", "param_names",
                      "param_shapes", "buffer_names", "buffer_shapes", "batch_size", "num_train",
                      "full_batch", "batch_log")

# --- results file -------------------------------------------------------------------------
ITEM_MARK = "_item"
COMPLETE = "complete"
JSON_ATTRS = "_json"
DONE_PREFIX = "_done_"
BLOCK_ROWS = "_block_rows"
BLOCK_ATTRS = "_block_attrs"
RESERVED_ATTRS = frozenset({ITEM_MARK, COMPLETE, JSON_ATTRS})

# HDF5 object headers (default file format) hold at most 64 KiB; keep JSON attrs below that.
MAX_ATTR_BYTES = 60_000
