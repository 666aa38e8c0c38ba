"""mzsr_tf.data.patches against the MainSR recipe, with hand-computed expectations."""
import numpy as np
import pytest

from mzsr_tf.data import patches as P


def _noise(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _reference_gradient(patch):
    """MainSR's ``gradients`` written out for one patch (float64 / 255)."""
    x = patch.astype(np.float64) / 255.
    return np.mean(((x[:-1, :-1, :] - x[1:, :-1, :]) ** 2 + (x[:-1, :-1, :] - x[:-1, 1:, :]) ** 2))


def test_grid_origins_by_hand():
    # 200 x 330, patch 64, stride 120: rows 0, 120 (last start 136); cols 0, 120, 240 (last 266).
    origins = P.patch_origins(200, 330, 64, 120)
    np.testing.assert_array_equal(origins, [[0, 0], [0, 120], [0, 240],
                                            [120, 0], [120, 120], [120, 240]])


def test_cut_patches_are_the_slices():
    image = _noise(50, 60)
    origins = np.array([[0, 0], [10, 35], [34, 44]])
    patches = P.cut_patches(image, origins, 16)
    for patch, (i, j) in zip(patches, origins):
        np.testing.assert_array_equal(patch, image[i:i + 16, j:j + 16])


def test_gradient_scores_bit_identical_to_the_reference_formula():
    patches = _noise(64 * 4, 64)[None].reshape(4, 64, 64, 3)
    patches[1] //= 16  # a smoother patch too
    expected = np.array([_reference_gradient(p) for p in patches])
    np.testing.assert_array_equal(P.gradient_scores(patches), expected)


@pytest.mark.parametrize("step, kept", [(12, False), (13, True)])
def test_gradient_threshold_by_hand(step, kept):
    # Columns alternating 0, step: every horizontal difference is step/255, vertical ones 0, so
    # the score is (step/255)**2 and log(score) >= -6 iff step >= 255 * exp(-3) = 12.70.
    row = np.where(np.arange(64) % 2, step, 0).astype(np.uint8)
    patch = np.broadcast_to(row[None, :, None], (64, 64, 3)).copy()
    assert P.gradient_scores(patch[None])[0] == pytest.approx((step / 255) ** 2, rel=1e-12)
    assert P.passes_gradient_filter(patch[None])[0] == kept


def test_patch_count_of_a_known_image_by_hand():
    # 6 grid positions (see test_grid_origins_by_hand); the one at (0, 120) is flat -> dropped.
    image = _noise(200, 330)
    image[0:64, 120:184] = 77
    kept = P.extract_patches(image, 64, 120)
    assert len(kept) == 5
    expected = [image[i:i + 64, j:j + 64] for i, j in [(0, 0), (0, 240), (120, 0), (120, 120),
                                                      (120, 240)]]
    np.testing.assert_array_equal(kept, expected)
    patch_index, modes = P.reference_order([len(kept)])
    assert len(patch_index) == 5 * 8 == 40


def test_image_smaller_than_a_patch_names_it():
    with pytest.raises(ValueError, match=r"tiny\.png: image is 40x100, smaller than one 64x64 patch"):
        P.extract_patches(_noise(40, 100), 64, 120, name="tiny.png")


def test_eight_augmentations_in_the_reference_order():
    a, b, c, d = 1, 2, 3, 4
    patch = np.array([[a, b], [c, d]], np.uint8)[None, :, :, None]
    expected = [
        [[a, b], [c, d]],  # 0: identity
        [[c, d], [a, b]],  # 1: flipud
        [[b, d], [a, c]],  # 2: rot90 (counter-clockwise)
        [[a, c], [b, d]],  # 3: rot90 then flipud
        [[d, c], [b, a]],  # 4: rot180
        [[b, a], [d, c]],  # 5: rot180 then flipud
        [[c, a], [d, b]],  # 6: rot270
        [[d, b], [c, a]],  # 7: rot270 then flipud
    ]
    for mode, want in enumerate(expected):
        np.testing.assert_array_equal(P.augment(patch, mode)[0, :, :, 0], want)
    with pytest.raises(ValueError, match="0..7"):
        P.augment(patch, 8)


def test_reference_order_image_then_mode_then_patch():
    patch_index, modes = P.reference_order([2, 1])
    np.testing.assert_array_equal(patch_index, [0, 1] * 8 + [2] * 8)
    np.testing.assert_array_equal(modes, [m for m in range(8) for _ in range(2)] + list(range(8)))


def test_whole_recipe_equals_the_reference_loops():
    # The MainSR loops written out: for each image, for mode, for i, for j, filter, augment.
    images = [_noise(150, 170, seed=1), _noise(130, 250, seed=2) // 40]
    images[0][0:48, 0:48] = 0
    reference = []
    for image in images:
        for mode in range(8):
            for i in range(0, image.shape[0] - 48 + 1, 60):
                for j in range(0, image.shape[1] - 48 + 1, 60):
                    patch = image[i:i + 48, j:j + 48]
                    if np.log(_reference_gradient(patch) + 1e-10) >= -6.0:
                        turned = np.rot90(patch, mode // 2)
                        reference.append(np.flipud(turned) if mode % 2 else turned)
    kept = [P.extract_patches(image, 48, 60) for image in images]
    patch_index, modes = P.reference_order([len(k) for k in kept])
    ours = P.gather_augmented(np.concatenate(kept), patch_index, modes)
    assert len(reference) == len(ours) > 0
    np.testing.assert_array_equal(ours, np.array(reference))
    # Shuffled as the reference's ``np.random.seed(36); np.random.shuffle(list)`` with RandomState.
    shuffled_reference = list(range(len(reference)))
    np.random.RandomState(36).shuffle(shuffled_reference)
    patch_index, modes = P.shuffled_order([len(k) for k in kept], np.random.RandomState(36))
    np.testing.assert_array_equal(P.gather_augmented(np.concatenate(kept), patch_index, modes),
                                  np.array(reference)[shuffled_reference])


def test_shuffle_depends_on_the_generator_only():
    first = P.shuffled_order([3, 4], np.random.default_rng(5))
    again = P.shuffled_order([3, 4], np.random.default_rng(5))
    other = P.shuffled_order([3, 4], np.random.default_rng(6))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0] * 8 + first[1], other[0] * 8 + other[1])
    # A permutation: every (patch, mode) exactly once.
    assert sorted(first[0] * 8 + first[1]) == list(range(56))


def test_pretrain_pairs_cut_lr_at_origin_over_scale():
    hr = _noise(100, 140)
    lr = _noise(50, 70, seed=3)
    labels, lr_patches = P.extract_pairs(hr, lr, 32, 2, 40)
    # Grid: rows 0, 40 (last start 68); cols 0, 40, 80 (last 108); all noise -> all kept.
    origins = [(0, 0), (0, 40), (0, 80), (40, 0), (40, 40), (40, 80)]
    assert len(labels) == len(lr_patches) == 6
    for label, small, (i, j) in zip(labels, lr_patches, origins):
        np.testing.assert_array_equal(label, hr[i:i + 32, j:j + 32])
        np.testing.assert_array_equal(small, lr[i // 2:i // 2 + 16, j // 2:j // 2 + 16])


def test_pretrain_pairs_check_shapes():
    with pytest.raises(ValueError, match=r"x\.png: LR shape"):
        P.extract_pairs(_noise(100, 140), _noise(40, 70), 32, 2, 40, name="x.png")
    with pytest.raises(ValueError, match="not a multiple of the scale"):
        P.extract_pairs(_noise(100, 140), _noise(50, 70), 33, 2, 40)


def test_modcrop_of_the_records_is_the_metrics_one():
    from mzsr_tf.metrics import modcrop
    assert modcrop(np.zeros((101, 77, 3)), 4).shape == (100, 76, 3)
