"""TrainConfig: JSON round trip, validation errors that name the field, resume comparison."""

import pytest

from checkpoints.config import TrainConfig, check_resumable, differing_fields
from landscape.errors import ConfigMismatchError, InputError

BASE = dict(dataset="mnist1d", model="cnn1d", steps=10)

ROUND_TRIP_CASES = [
    dict(BASE),
    dict(BASE, schedule="step", milestones=(3, 7), gamma=0.5, momentum=0.9, nesterov=True),
    dict(BASE, schedule="list", lr_points=((0, 0.1), (5, 0.01)), warmup_steps=3),
    dict(BASE, schedule="cosine", cosine_steps=10, min_lr=0.001, dataset_kwargs={"num_train": 64}),
    dict(BASE, model_kwargs={"width": 0.5}, save_steps=(1, 2, 3), full_batch=True),
]


@pytest.mark.parametrize("kwargs", ROUND_TRIP_CASES, ids=range(len(ROUND_TRIP_CASES)))
def test_json_round_trip(kwargs):
    cfg = TrainConfig(**kwargs)
    back = TrainConfig.from_json(cfg.to_json())
    assert back == cfg, f"round trip changed {differing_fields(cfg, back, ignore=())}"
    assert back.to_json() == cfg.to_json()


BAD_CASES = [  # (kwargs, substring the message must contain)
    (dict(dataset="mnist1d"), "exactly one of epochs and steps"),
    (dict(BASE, epochs=2), "exactly one of epochs and steps"),
    (dict(BASE, lr=-0.1), "lr must be a positive"),
    (dict(BASE, lr=float("nan")), "lr must be a positive"),
    (dict(BASE, momentum=1.0), "momentum must be in [0, 1)"),
    (dict(BASE, nesterov=True), "nesterov needs momentum"),
    (dict(BASE, schedule="warp"), "unknown schedule"),
    (dict(BASE, schedule="step"), "needs milestones"),
    (dict(BASE, schedule="step", milestones=(5, 3)), "strictly increasing"),
    (dict(BASE, schedule="list", lr_points=((2, 0.1),)), "starting at step 0"),
    (dict(BASE, schedule="list", lr_points=((0, 0.1), (3, -1.0))), "every lr in lr_points"),
    (dict(BASE, batch_size=0), "batch_size must be a positive"),
    (dict(BASE, save_every=-1), "save_every must be an integer >= 0"),
    (dict(BASE, sharpness_bn="both"), "sharpness_bn"),
    (dict(BASE, model_kwargs={"f": object()}), "JSON-serialisable"),
]


@pytest.mark.parametrize("kwargs,msg", BAD_CASES, ids=[m for _, m in BAD_CASES])
def test_validation_names_the_problem(kwargs, msg):
    with pytest.raises(InputError, match=None) as info:
        TrainConfig(**kwargs)
    assert msg in str(info.value), f"message {str(info.value)!r} lacks {msg!r}"


def test_unknown_key_is_rejected():
    with pytest.raises(InputError, match="unknown training config key"):
        TrainConfig.from_dict(dict(BASE, learning_rate=0.1))


def test_resolved_fills_defaults():
    cfg = TrainConfig(**BASE, schedule="cosine").resolved(num_train=100, dataset_default_augment=True)
    assert (cfg.cosine_steps, cfg.augment, cfg.deterministic) == (10, True, True)
    epochs = TrainConfig(dataset="mnist1d", epochs=3, batch_size=32)
    assert epochs.total_steps(100) == 9  # ⌊100/32⌋ = 3 steps per epoch
    assert TrainConfig(dataset="mnist1d", epochs=3, full_batch=True).total_steps(100) == 3


def test_resume_allows_only_resumable_fields():
    cfg = TrainConfig(**BASE)
    check_resumable(cfg, cfg.replace(steps=50, device="cuda"), "run.h5")
    with pytest.raises(ConfigMismatchError, match="lr: file=0.1 vs given=0.2"):
        check_resumable(cfg, cfg.replace(lr=0.2), "run.h5")
