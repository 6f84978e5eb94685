"""Augmentation: replayable from (seed, step), different across steps, no global RNG, correct crops."""

import torch

from checkpoints.augment import PAD, aug_seed, augment, draw


def images(n=16, C=3, H=8, W=8):
    return torch.arange(n * C * H * W, dtype=torch.float32).reshape(n, C, H, W)


def test_same_seed_same_batch_bitwise():
    x = images()
    a, b = augment(x, aug_seed(7, 12)), augment(x, aug_seed(7, 12))
    assert torch.equal(a, b), f"max |diff| = {(a - b).abs().max()}"


def test_different_steps_and_seeds_differ():
    x = images(n=64)
    base = augment(x, aug_seed(7, 12))
    for other in (aug_seed(7, 13), aug_seed(8, 12)):
        assert not torch.equal(base, augment(x, other))
    assert len({aug_seed(0, t) for t in range(1000)}) == 1000


def test_global_rng_untouched():
    torch.manual_seed(3)
    before = torch.get_rng_state()
    augment(images(), aug_seed(0, 0))
    assert torch.equal(before, torch.get_rng_state())


def test_crop_and_flip_match_a_per_image_reference():
    """Each output image is the padded input's (dy, dx) crop, mirrored when flip is drawn."""
    x = images(n=32)
    seed = aug_seed(1, 5)
    out = augment(x, seed)
    flip, dy, dx = draw(len(x), seed)
    padded = torch.nn.functional.pad(x, (PAD,) * 4)
    for i in range(len(x)):
        ref = padded[i, :, dy[i]:dy[i] + 8, dx[i]:dx[i] + 8]
        ref = ref.flip(-1) if flip[i] else ref
        assert torch.equal(out[i], ref), f"image {i}: flip={bool(flip[i])} dy={int(dy[i])} dx={int(dx[i])}"
    assert flip.any() and (~flip).any(), "32 draws should include both flips"
    assert len(set(dy.tolist())) > 1 and len(set(dx.tolist())) > 1, "offsets should vary"


def test_input_not_modified():
    x = images()
    copy = x.clone()
    augment(x, 123)
    assert torch.equal(x, copy)
