"""A small synthetic run for the landscape.io tests: deterministic content per step.

All comparisons in these tests are exact (bitwise): the io layer stores and returns bytes,
so there is no tolerance to justify.
"""

import numpy as np

P, B, BATCH, NUM_TRAIN = 50, 4, 6, 40


def make_meta(**config) -> dict:
    cfg = {"lr": 0.1, "momentum": 0.9, "total_steps": 12, "model": {"width": 8}}
    cfg.update(config)
    return {"config": cfg, "model_name": "mlp", "model_kwargs": {"width": 8},
            "dataset_spec": {"name": "synthetic", "num_train": NUM_TRAIN},
            "dataset_checksum": "ab" * 32, "seed": 3, "param_names": ["w", "b"],
            "param_shapes": [[45], [5]], "num_train": NUM_TRAIN, "batch_size": BATCH,
            "full_batch": False}


class Synthetic:
    """Deterministic content per step, so every stored row can be checked exactly."""

    @staticmethod
    def theta(s):
        return np.random.default_rng(s).standard_normal(P).astype(np.float32)

    @staticmethod
    def momentum(s):
        return np.random.default_rng(10_000 + s).standard_normal(P).astype(np.float32)

    @staticmethod
    def buffers(s):
        return np.full(B, s, np.float32)

    @staticmethod
    def batches(a, b):
        return np.stack([(np.arange(BATCH) * 5 + 3 * s) % NUM_TRAIN for s in range(a, b)])

    def steps(self, w, a, b):
        s = np.arange(a, b)
        w.append_steps(s, self.batches(a, b), s + 100, s * 0.25, np.full(b - a, 0.1))

    def snapshot(self, w, s):
        w.append_snapshot(s, self.theta(s), self.buffers(s), self.momentum(s))

    def run(self, w, a, b, every=4):
        """Steps a … b-1 with a snapshot, an eval and a sharpness row every ``every`` steps."""
        for s in range(a, b):
            if s % every == 0:
                self.snapshot(w, s)
                w.append_eval(s, 1.0 / (s + 1), 0.5, 2.0 / (s + 1), 0.25)
                w.append_sharpness(s, [3.0 + s, 2.0, 1.0], 0.1)
            self.steps(w, s, s + 1)
            w.commit()
