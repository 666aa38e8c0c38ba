"""Tests of exact tiling: the tiled loss, gradients and forward pass equal the whole image's; the tile policy."""
import ctypes
import ctypes.util
import os

import numpy as np
import pytest
import tensorflow as tf

from mzsr_tf import inner
from mzsr_tf.config import AdaptationConfig
from mzsr_tf.imresize import tf_imresize
from mzsr_tf.meta_test import MetaTester
from mzsr_tf.metrics import to_uint8
from mzsr_tf.model import MZSRNet, forward
from mzsr_tf.process_memory import release_free_memory
from mzsr_tf.tiling import MemoryModel, TilePolicy, Tiler, TilingError, lr_grid, tile_boxes

DEPTH = 8


@pytest.fixture(scope="module")
def params():
    return [tf.convert_to_tensor(v) for v in MZSRNet(seed=3).trainable_variables]


def _whole_loss_and_gradients(params, son_ilr, father):
    with tf.GradientTape() as tape:
        tape.watch(params)
        loss = inner.l1_loss(father[None], forward(params, son_ilr[None]))
    return loss, tape.gradient(loss, params)


# Sides that are and are not multiples of the tile; a tile of exactly twice the halo; tiles larger
# than one side; one of 17 (odd, the scale does not divide it).
@pytest.mark.parametrize("height, width, tile", [(37, 29, 10), (32, 48, 16), (41, 20, 17), (24, 24, 24 - 1)])
def test_tiled_gradients_equal_the_whole_image_gradients(params, height, width, tile):
    rng = np.random.default_rng(height * width)
    son_ilr = tf.constant(rng.random((height, width, 3), np.float32))
    father = tf.constant(rng.random((height, width, 3), np.float32))
    done = []
    tiler = Tiler(forward, DEPTH, tile, progress=lambda d, total: done.append((d, total)))
    loss, grads = tiler.loss_and_gradients(params, son_ilr, father)
    whole_loss, whole_grads = _whole_loss_and_gradients(params, son_ilr, father)
    assert float(loss) == pytest.approx(float(whole_loss), rel=1e-6)
    for got, expected in zip(grads, whole_grads):
        # float32 sums of ~5,000 terms in another order: up to ~3e-6 of the largest entry (a halo one
        # pixel short is off by more than 1e-4: test_a_halo_too_small_would_be_caught)
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0,
                                   atol=1e-5 * float(tf.reduce_max(tf.abs(expected))))
    count = len(tile_boxes(height, width, tile))
    assert count > 1 and done == [(k, count) for k in range(1, count + 1)]


def test_a_halo_too_small_would_be_caught(params):
    """The test above can fail: with a halo of 4 the tiles' borders see zeros instead of neighbours."""
    rng = np.random.default_rng(0)
    son_ilr = tf.constant(rng.random((32, 32, 3), np.float32))
    father = tf.constant(rng.random((32, 32, 3), np.float32))
    _, grads = Tiler(forward, 4, 10).loss_and_gradients(params, son_ilr, father)
    _, whole = _whole_loss_and_gradients(params, son_ilr, father)
    assert max(float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(b))) for a, b in zip(grads, whole)) > 1e-4


@pytest.mark.parametrize("height, width, tile, scale, out_extra", [
    (37, 29, 10, 2.0, 0), (40, 33, 16, 4.0, 0), (30, 31, 8, 2.5, 0), (26, 21, 7, 3.0, 0),
    (30, 25, 12, 2.0, -1)])  # a GT-sized output one row and column short of 2x the input
def test_tiled_forward_equals_the_whole_image_forward(params, height, width, tile, scale, out_extra):
    lr = np.random.default_rng(tile).random((height, width, 3), np.float32)
    out_hw = (int(np.ceil(height * scale)) + out_extra, int(np.ceil(width * scale)) + out_extra)
    sr = Tiler(forward, DEPTH, tile).forward(params, lr, scale, out_hw)
    ilr = tf_imresize(tf.constant(lr), scale, output_shape=out_hw, kernel="cubic")
    expected = tf.clip_by_value(forward(params, ilr[None])[0], 0.0, 1.0).numpy()
    assert sr.shape == expected.shape
    np.testing.assert_allclose(sr, expected, rtol=0, atol=1e-6)


def test_meta_test_tiled_equals_whole_image(params):
    """Ten steps of the meta-test, tiled and whole, from the same weights on a 45x38 input (x2, g^d kernel)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:45, 0:38] / 20.0
    lr = np.clip(0.5 + 0.3 * np.sin(3 * x[..., None] + np.stack([y, 2 * y, 3 * y], 2)) + 0.05 * rng.random((45, 38, 3)),
                 0, 1).astype(np.float32)
    kernel = np.outer(np.hanning(9)[1:-1], np.hanning(9)[1:-1]).astype(np.float32)
    kernel /= kernel.sum()
    config = AdaptationConfig(num_steps=10)
    progress = []
    whole = MetaTester(params, config).adapt(lr, kernel)
    tester = MetaTester(params, config, TilePolicy(tile=16, progress=lambda *a: progress.append(a)))
    tiled = tester.adapt(lr, kernel)
    assert tester.last_tile == 16
    np.testing.assert_allclose(tiled.son_losses, whole.son_losses, rtol=1e-5)
    np.testing.assert_allclose(tiled.sr, whole.sr, rtol=0, atol=2e-5)
    np.testing.assert_allclose(tiled.initial_sr, whole.initial_sr, rtol=0, atol=1e-6)
    assert np.abs(whole.sr - whole.initial_sr).max() > 1e-3  # the steps did move the weights
    # 9 gradient tiles (45x38 in 16s: 3 x 3) per step; 9 forward tiles for each recorded image (45x38 LR pixels
    # in tiles of FORWARD_TILE_SCALE x 16 output pixels = 16 LR pixels: 3 x 3)
    assert [a for a in progress if a[0] == "step" and a[2] == a[3]] == [("step", n, 9, 9) for n in range(1, 11)]
    assert [a for a in progress if a[0] == "SR" and a[2] == a[3]] == [("SR", 0, 9, 9), ("SR", 10, 9, 9)]


def test_quantized_sr_is_the_float_sr_rounded(params):
    """``adapt(quantized=True)`` (tiled: each tile rounded as it is made; whole: the image rounded) gives
    exactly ``metrics.to_uint8`` of the float SR images of the same mode."""
    lr = np.random.default_rng(5).random((30, 27, 3), np.float32)
    config = AdaptationConfig(num_steps=2)
    for tiling in (TilePolicy(tile=0), TilePolicy(tile=16)):
        tester = MetaTester(params, config, tiling)
        floats, rounded = tester.adapt(lr), tester.adapt(lr, quantized=True)
        for got, expected in ((rounded.sr, floats.sr), (rounded.initial_sr, floats.initial_sr)):
            assert got.dtype == np.uint8
            np.testing.assert_array_equal(got, to_uint8(expected))
    with pytest.raises(ValueError, match="dtype must be"):
        Tiler(forward, DEPTH, 16).forward(params, lr, 2.0, (60, 54), np.float64)


def test_release_free_memory_returns_a_freed_transient():
    """glibc keeps freed blocks below its (raised) mmap threshold resident; ``release_free_memory`` hands them
    back. 200 blocks of 1 MB, freed: resident before the trim, gone after it."""
    if not release_free_memory():
        pytest.skip("the C library has no malloc_trim (not glibc)")
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD: keep 1 MB blocks on the heap, as after a large free
    blocks = [libc.malloc(1 << 20) for _ in range(200)]
    for block in blocks:
        ctypes.memset(block, 1, 1 << 20)  # make them resident
    before = _resident_bytes()
    for block in blocks[:-1]:  # keep the last: free() trims the heap's top only, so these stay resident
        libc.free(block)
    kept = _resident_bytes()
    release_free_memory()
    after = _resident_bytes()
    libc.free(blocks[-1])
    assert kept > before - 50e6  # free() alone gave (almost) nothing back
    assert after < kept - 150e6  # the trim gave back most of the 199 MB


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_forced_tiles_too_small_or_negative_are_refused():
    with pytest.raises(TilingError, match="tile 8 is smaller than 16 pixels"):
        TilePolicy(tile=8).tile_for((100, 100, 3), 2.0, DEPTH, 2)
    with pytest.raises(TilingError, match="tile must be 0"):
        TilePolicy(tile=-1)
    with pytest.raises(TilingError, match="max_memory must be positive"):
        TilePolicy(tile=None, max_memory=0)
    assert TilePolicy(tile=64).tile_for((50, 60, 3), 2.0, DEPTH, 2) == 0  # larger than the image: whole


def test_auto_tile_fits_the_memory_model():
    model = MemoryModel()
    policy = TilePolicy(tile=None, max_memory=2 * 1024 ** 3, memory=model)
    assert policy.tile_for((256, 256, 3), 2.0, DEPTH, 2) == 0  # fits whole
    # a 12 MP photograph, its SR image only (no GT): the largest tile that keeps the model under 2 GiB
    tile = policy.tile_for((3000, 4000, 3), 2.0, DEPTH, 1)
    pixels, out = 3000 * 4000, 6000 * 8000
    assert 256 < tile < 4000
    assert model.tiled(pixels, out, 1, tile, DEPTH, 2.0) <= 2 * 1024 ** 3 < model.tiled(pixels, out, 1, tile + 8,
                                                                                        DEPTH, 2.0)
    # with the SR image before adaptation kept too (a GT to score it), 2 GiB is too small at any tile
    with pytest.raises(TilingError, match=r"max memory 2.15 GB is too small for a 3000x4000 input even with "
                                          r"16-pixel tiles \(about 2.\d\d GB needed\)"):
        policy.tile_for((3000, 4000, 3), 2.0, DEPTH, 2)


def test_lr_grid_is_the_scales_denominator():
    assert (lr_grid(2.0), lr_grid(4.0), lr_grid(2.5), lr_grid(3.7)) == (1, 1, 2, 10)


def test_fast_mode_crops_are_seeded(params):
    from mzsr_tf.tiling import CropGradients, random_crops
    rng = np.random.default_rng(11)
    son_ilr = tf.constant(rng.random((50, 70, 3), np.float32))
    father = tf.constant(rng.random((50, 70, 3), np.float32))
    inputs, labels = random_crops(son_ilr, father, 4, 16, tf.constant([3, 4], tf.int64))
    again, _ = random_crops(son_ilr, father, 4, 16, tf.constant([3, 4], tf.int64))
    other, _ = random_crops(son_ilr, father, 4, 16, tf.constant([3, 5], tf.int64))
    assert inputs.shape == labels.shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(inputs.numpy(), again.numpy())
    assert not np.array_equal(inputs.numpy(), other.numpy())
    # each crop pairs the same place of both images: find it in son_ilr, check father there
    for crop, label in zip(inputs.numpy(), labels.numpy()):
        top, left = [(t, l) for t in range(35) for l in range(55)
                     if np.array_equal(son_ilr.numpy()[t:t + 16, l:l + 16], crop)][0]
        np.testing.assert_array_equal(father.numpy()[top:top + 16, left:left + 16], label)
    # fresh crops at every call, the same sequence for the same seed
    first, second = CropGradients(forward, 4, 16, (1, 2)), CropGradients(forward, 4, 16, (1, 2))
    losses = [float(first(params, son_ilr, father)[0]) for _ in range(2)]
    assert losses[0] != losses[1]
    assert [float(second(params, son_ilr, father)[0]) for _ in range(2)] == losses


def test_fast_mode_meta_test_is_seeded(params):
    lr = np.random.default_rng(5).random((40, 44, 3)).astype(np.float32)
    config = AdaptationConfig(num_steps=3, son_crops=4, son_crop_size=16)
    tester = MetaTester(params, config)
    a, b = tester.adapt(lr, None, seed=(2, 0)), tester.adapt(lr, None, seed=(2, 0))
    c = tester.adapt(lr, None, seed=(3, 0))
    np.testing.assert_array_equal(a.sr, b.sr)
    assert not np.array_equal(a.sr, c.sr)
    exact = MetaTester(params, AdaptationConfig(num_steps=3)).adapt(lr, None, seed=(2, 0))
    np.testing.assert_allclose(a.initial_sr, exact.initial_sr, atol=1e-6)  # the same start, other steps
    assert np.abs(a.sr - exact.sr).max() > 1e-4
