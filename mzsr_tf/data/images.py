"""The one image lister and reader: folders of PNG/BMP/JPEG/TIFF files as uint8 RGB arrays.

Every caller lists and reads images here: the training data (``mzsr_tf.data.build``), the test sets
(``mzsr_tf.testsets``) and the meta-test (``mzsr_tf.meta_test``, ``mzsr_tf.evaluate``).

Listing (``list_images``): the files directly inside a folder whose name ends with one of
``IMAGE_EXTENSIONS`` (any case), sorted by path; a missing or empty folder is an error.

Reading (``read_image``) returns ``uint8`` of shape ``[H, W, 3]``.  By default it converts:

- grayscale (``[H, W]`` or ``[H, W, 1]``) is repeated into three channels;
- an alpha channel (RGBA, or grayscale + alpha) is dropped with a warning naming the file;
- 16-bit images are scaled to 8 bits (``round(v * 255 / 65535)``); but 16-bit RGB(A) PNGs reach us
  already reduced to 8 bits by imageio's Pillow plugin (which keeps the high byte, ``v >> 8``).

With ``strict=True`` (the meta-test's rule: its inputs are used as they are) it converts nothing:
anything but 8-bit RGB is an error saying what to do, 16-bit RGB PNGs included (recognised by the
bit depth in the file's header, ``png_bit_depth``, since the decoder hands them over as 8-bit).
Any other layout, and any file that cannot be decoded, is an error naming the file.

Errors are ``FileNotFoundError`` (folders) and ``ImageReadError`` (files) unless the caller passes
its own class (``error=``), so that each tool reports its bad input its own way.  ``what`` names the
role of a folder or file in messages (``"input folder X does not exist"``, ``"cannot read HR image X:
..."``); without it messages start with the path (``"X: image folder does not exist"``).
"""
from __future__ import annotations

import os
import warnings
from typing import List, Optional, Sequence, Type, Union

import imageio.v3 as iio
import numpy as np

IMAGE_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")
"""File name endings (lower case) of the images every tool lists."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

PathLike = Union[str, os.PathLike]


class ImageReadError(ValueError):
    """An image file that cannot be used (unreadable, empty, or an unsupported layout)."""


def image_files(folder: PathLike) -> List[str]:
    """The image files (``IMAGE_EXTENSIONS``, any case) directly inside ``folder``, sorted; ``[]`` if none.

    ``folder`` must exist (``list_images`` checks that and reports it).
    """
    folder = os.fspath(folder)
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, name)))


def list_images(folders: Union[PathLike, Sequence[PathLike]], what: Optional[str] = None,
                error: Type[Exception] = FileNotFoundError) -> List[str]:
    """The image files (``image_files``) of one folder or of a list of folders, sorted by path.

    A missing folder, a path that is not a folder, and a folder without images are each an ``error``
    naming the folder; ``what`` names the folder's role in the message (e.g. ``"input"``, ``"GT"``).
    """
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    paths: List[str] = []
    for folder in folders:
        folder = os.fspath(folder)
        if what is not None and os.path.exists(folder) and not os.path.isdir(folder):
            raise error(f"{what} folder {folder} is a file, not a folder")
        if what is not None and not os.path.isdir(folder):
            raise error(f"{what} folder {folder} does not exist")
        if not os.path.exists(folder):
            raise error(f"{folder}: image folder does not exist")
        if not os.path.isdir(folder):
            raise error(f"{folder}: is not a folder (expected a folder of HR images)")
        found = image_files(folder)
        if not found and what is not None:
            raise error(f"{what} folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        if not found:
            raise error(f"{folder}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)} files)")
        paths.extend(found)
    return sorted(paths)


UNDECODABLE = "not a decodable image (damaged, or not a PNG, BMP, JPEG or TIFF file)"
"""The reason given for every file the image library cannot decode, whatever its own message (they vary by
plugin and version, and quote the path with stray backticks)."""


def decode_image(path: PathLike, what: Optional[str] = None,
                 error: Type[Exception] = ImageReadError) -> np.ndarray:
    """The array ``imageio`` decodes from ``path``, unchecked (any dtype, 2-D or 3-D).

    A file that cannot be decoded is an ``error`` naming it (``what``: its role, e.g. ``"HR image"``):
    ``cannot read <what> <path>: <reason>`` (without ``what``: ``<path>: cannot read image: <reason>``),
    the reason being the system's for a file that cannot be opened (``Permission denied``) and
    ``UNDECODABLE`` for any decoder failure.
    """
    path = os.fspath(path)
    try:
        return np.asarray(iio.imread(path))
    except Exception as exc:  # imageio raises many types (OSError, ValueError, plugin errors)
        opening = isinstance(exc, OSError) and exc.errno is not None and exc.strerror
        reason = exc.strerror if opening else "empty file" if _is_empty(path) else UNDECODABLE
        if what is not None:
            raise error(f"cannot read {what} {path}: {reason}") from None
        raise error(f"{path}: cannot read image: {reason}") from None


def _is_empty(path: str) -> bool:
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False


def png_bit_depth(path: PathLike) -> Optional[int]:
    """The bits per sample a PNG file declares (its ``IHDR`` header: 1, 2, 4, 8 or 16), or ``None``
    for a file that is not a PNG (or too short to say)."""
    try:
        with open(os.fspath(path), "rb") as f:
            header = f.read(25)
    except OSError:
        return None
    if len(header) < 25 or not header.startswith(PNG_SIGNATURE) or header[12:16] != b"IHDR":
        return None
    return header[24]


def is_grayscale(image: np.ndarray) -> bool:
    """Whether a decoded image has one colour channel (``[H, W]``, ``[H, W, 1]``, or gray + alpha)."""
    return image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 2))


def _check_rgb_uint8(image: np.ndarray, name: str, error: Type[Exception]) -> np.ndarray:
    """``image`` itself if it is 8-bit RGB ``[H, W, 3]``; otherwise an ``error`` saying how to convert it."""
    if image.dtype != np.uint8:
        raise error(f"{name}: {image.dtype} image; the meta-test takes 8-bit RGB images "
                    "(convert 16-bit images to 8-bit first)")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise error(f"{name}: grayscale image; the meta-test takes RGB images "
                    "(stack the channel three times to use it)")
    if image.ndim != 3 or image.shape[2] != 3:
        channels = image.shape[2] if image.ndim == 3 else "?"
        raise error(f"{name}: image with {channels} channels (shape {image.shape}); the "
                    "meta-test takes RGB images (drop the alpha channel first)")
    return image


def to_rgb_uint8(image: np.ndarray, name: str = "image", strict: bool = False,
                 error: Type[Exception] = ImageReadError) -> np.ndarray:
    """A decoded image array as ``uint8`` ``[H, W, 3]`` (see the module docstring); ``name`` is used in messages.

    ``strict``: convert nothing; anything but 8-bit RGB is an ``error`` (the meta-test's rule).
    """
    if strict:
        return _check_rgb_uint8(image, name, error)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise error(f"{name}: expected a 2-D image, got an array of shape {image.shape}")
    channels = image.shape[2]
    if channels in (2, 4):
        warnings.warn(f"{name}: dropping the alpha channel", stacklevel=3)
        image = image[:, :, :channels - 1]
        channels -= 1
    if channels == 1:
        image = np.repeat(image, 3, axis=2)
    elif channels != 3:
        raise error(f"{name}: unsupported number of channels {channels} "
                    f"(expected gray, gray+alpha, RGB or RGBA)")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if image.dtype == np.uint16:
        scaled = np.round(image.astype(np.float64) * (255.0 / 65535.0))
        return scaled.astype(np.uint8)
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    raise error(f"{name}: unsupported pixel type {image.dtype} (expected 8- or 16-bit)")


def read_image(path: PathLike, strict: bool = False, what: Optional[str] = None,
               error: Type[Exception] = ImageReadError) -> np.ndarray:
    """The image at ``path`` as ``uint8`` RGB, shape ``[H, W, 3]`` (``decode_image`` + ``to_rgb_uint8``).

    ``strict``: only 8-bit RGB files are accepted, as they are (the meta-test's rule; a 16-bit RGB
    PNG, which the decoder hands over as 8-bit, is recognised by its header); otherwise grayscale,
    alpha and 16-bit are converted.  ``what`` and ``error`` as ``decode_image``.
    """
    path = os.fspath(path)
    image = decode_image(path, what, error)
    if strict and image.dtype == np.uint8 and png_bit_depth(path) == 16:
        raise error(f"{path}: 16-bit PNG (decoded as 8-bit); the meta-test takes 8-bit RGB images "
                    "(convert 16-bit images to 8-bit first)")
    return to_rgb_uint8(image, path, strict, error)
