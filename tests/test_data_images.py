"""mzsr_tf.data.images: PNG/BMP/JPEG as uint8 RGB, channel and bit-depth conversions, errors."""
import imageio.v3 as iio
import numpy as np
import pytest

from mzsr_tf.data.images import ImageReadError, list_images, read_image, to_rgb_uint8


def _rgb(height=5, width=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("extension", [".png", ".bmp"])
def test_lossless_rgb_round_trip(tmp_path, extension):
    image = _rgb()
    path = tmp_path / f"a{extension}"
    iio.imwrite(path, image)
    out = read_image(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, image)


def test_jpeg_is_read_as_decoded_rgb(tmp_path):
    path = tmp_path / "a.jpg"
    iio.imwrite(path, _rgb(16, 16))
    np.testing.assert_array_equal(read_image(path), np.asarray(iio.imread(path)))


def test_grayscale_is_repeated_into_three_channels(tmp_path):
    gray = _rgb()[:, :, 0]
    path = tmp_path / "gray.png"
    iio.imwrite(path, gray)
    out = read_image(path)
    assert out.shape == (5, 7, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], gray)


def test_alpha_is_dropped_with_a_warning_naming_the_file(tmp_path):
    rgba = np.concatenate([_rgb(), np.full((5, 7, 1), 17, np.uint8)], axis=2)
    path = tmp_path / "rgba.png"
    iio.imwrite(path, rgba)
    with pytest.warns(UserWarning, match=r"rgba\.png: dropping the alpha channel"):
        out = read_image(path)
    np.testing.assert_array_equal(out, rgba[:, :, :3])


def test_gray_with_alpha_becomes_rgb(tmp_path):
    gray_alpha = np.stack([_rgb()[:, :, 0], np.full((5, 7), 255, np.uint8)], axis=2)
    with pytest.warns(UserWarning, match="dropping the alpha channel"):
        out = to_rgb_uint8(gray_alpha, "ga")
    np.testing.assert_array_equal(out, np.repeat(gray_alpha[:, :, :1], 3, axis=2))


def test_16_bit_is_scaled_to_8_bit(tmp_path):
    # Hand values: v * 255 / 65535 = v / 257, rounded: 0 -> 0, 257 -> 1, 1000 -> 3.89 -> 4,
    # 32896 -> 128, 65535 -> 255.
    values = np.array([[0, 257, 1000, 32896, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    iio.imwrite(path, values)  # 16-bit grayscale PNG
    assert np.asarray(iio.imread(path)).dtype == np.uint16
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (1, 5, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[0, :, channel], [0, 1, 4, 128, 255])
    # RGB: green = values // 2 = 0, 128, 500, 16448, 32767 -> 0, 0.498, 1.95, 64.0, 127.498.
    rgb16 = np.stack([values, values // 2, values], axis=2)
    np.testing.assert_array_equal(to_rgb_uint8(rgb16)[0, :, 1], [0, 0, 2, 64, 127])


def test_unreadable_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"this is not a png")
    with pytest.raises(ImageReadError, match=r"broken\.png: cannot read image"):
        read_image(path)


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 4, 5), np.uint8), "unsupported number of channels 5"),
    (np.zeros((4, 4, 3), np.float32), "unsupported pixel type float32"),
    (np.zeros((4,), np.uint8), "expected a 2-D image"),
])
def test_unsupported_layouts_are_errors(array, message):
    with pytest.raises(ImageReadError, match=f"odd.png: {message}"):
        to_rgb_uint8(array, "odd.png")


def test_list_images_sorted_and_filtered(tmp_path):
    for name in ["b.PNG", "a.bmp", "c.jpeg", "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    names = [p.split("/")[-1] for p in list_images(tmp_path)]
    assert names == ["a.bmp", "b.PNG", "c.jpeg"]


def test_list_images_over_several_folders(tmp_path):
    for folder, name in [("x", "2.png"), ("y", "1.png")]:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_bytes(b"")
    paths = list_images([tmp_path / "y", tmp_path / "x"])
    assert [p.split("/")[-2:] for p in paths] == [["x", "2.png"], ["y", "1.png"]]


def test_empty_folder_is_an_error_naming_it(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: no images found"):
        list_images(tmp_path)


def test_missing_folder_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere: image folder does not exist"):
        list_images(tmp_path / "nowhere")
