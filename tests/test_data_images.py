"""mzsr_tf.data.images: PNG/BMP/JPEG/TIFF as uint8 RGB, channel and bit-depth conversions, strict mode, errors."""
import warnings

import imageio.v3 as iio
import numpy as np
import pytest

from mzsr_tf.data.images import (ImageReadError, decode_image, is_grayscale, list_images, read_image,
                                 to_rgb_uint8)


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


# --------------------------------------------------------------------------- one lister and reader for every tool

class _ToolError(ValueError):
    """Stands for a caller's own error class (MetaTestError, TestSetError)."""


def test_tiff_is_listed_and_read_losslessly(tmp_path):
    image = _rgb(6, 4, seed=3)
    iio.imwrite(tmp_path / "a.TIF", image)
    iio.imwrite(tmp_path / "b.tiff", image[::-1])
    paths = list_images(tmp_path)
    assert [p.split("/")[-1] for p in paths] == ["a.TIF", "b.tiff"]
    np.testing.assert_array_equal(read_image(paths[0], strict=True), image)
    np.testing.assert_array_equal(read_image(paths[1]), image[::-1])


def test_folder_errors_name_the_role_and_use_the_callers_error_class(tmp_path):
    with pytest.raises(_ToolError, match=r"^input folder .*nowhere does not exist$"):
        list_images(tmp_path / "nowhere", "input", error=_ToolError)
    (tmp_path / "empty").mkdir()
    with pytest.raises(_ToolError, match=r"^GT folder .*empty holds no images \(\.png, .*\.tiff\)$"):
        list_images(tmp_path / "empty", "GT", error=_ToolError)


def test_strict_reads_8_bit_rgb_unchanged(tmp_path):
    image = _rgb(5, 6, seed=4)
    path = tmp_path / "rgb.png"
    iio.imwrite(path, image)
    out = read_image(path, strict=True)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("array, message", [
    (np.arange(20, dtype=np.uint8).reshape(4, 5), "grayscale image; the meta-test takes RGB images"),
    (np.arange(80, dtype=np.uint8).reshape(4, 5, 4), r"image with 4 channels \(shape \(4, 5, 4\)\)"),
    (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000, "uint16 image; the meta-test takes 8-bit RGB"),
])
def test_strict_refuses_what_the_default_converts(tmp_path, array, message):
    path = tmp_path / "odd.png"
    iio.imwrite(path, array)
    with pytest.raises(_ToolError, match=rf"odd\.png: {message}"):
        read_image(path, strict=True, error=_ToolError)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dropping the alpha channel warns (tested above)
        assert read_image(path).shape == (4, 5, 3)  # the default reader converts the same file


def test_unreadable_file_with_a_role_and_the_callers_error_class(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"this is not a png")
    with pytest.raises(_ToolError, match=r"^cannot read HR image .*broken\.png: "):
        read_image(path, what="HR image", error=_ToolError)
    with pytest.raises(_ToolError, match=r"^cannot read image .*broken\.png: "):
        read_image(path, strict=True, what="image", error=_ToolError)


def test_is_grayscale_by_layout():
    assert is_grayscale(np.zeros((3, 4), np.uint8))
    assert is_grayscale(np.zeros((3, 4, 1), np.uint8))
    assert is_grayscale(np.zeros((3, 4, 2), np.uint8))  # gray + alpha
    assert not is_grayscale(np.zeros((3, 4, 3), np.uint8))
    assert not is_grayscale(np.zeros((3, 4, 4), np.uint8))


def test_decode_image_returns_the_file_as_stored(tmp_path):
    values = np.array([[0, 257, 65535]], dtype=np.uint16)
    iio.imwrite(tmp_path / "deep.png", values)
    decoded = decode_image(tmp_path / "deep.png")
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, values)


def test_strict_refuses_a_16_bit_rgb_png_the_decoder_reads_as_8_bit(tmp_path):
    from mzsr_tf.data.images import png_bit_depth
    from pngs import write_png16

    deep = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 1000 + 7).astype(np.uint16)
    path = tmp_path / "deep.png"
    write_png16(path, deep)
    decoded = decode_image(path)
    if decoded.dtype == np.uint8:  # imageio's Pillow plugin: the high byte of each sample
        np.testing.assert_array_equal(decoded, deep >> 8)
    assert png_bit_depth(path) == 16
    with pytest.raises(_ToolError, match=r"deep\.png: 16-bit .*the meta-test takes 8-bit RGB"):
        read_image(path, strict=True, error=_ToolError)
    assert read_image(path).shape == (4, 5, 3)  # the default reader still converts it
    # an 8-bit RGB PNG and a non-PNG file are told apart from it by the header
    iio.imwrite(tmp_path / "flat.png", _rgb())
    assert png_bit_depth(tmp_path / "flat.png") == 8
    iio.imwrite(tmp_path / "flat.bmp", _rgb())
    assert png_bit_depth(tmp_path / "flat.bmp") is None
    np.testing.assert_array_equal(read_image(tmp_path / "flat.png", strict=True), _rgb())
