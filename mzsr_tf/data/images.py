"""Reading training images: folders of PNG/BMP/JPEG files as uint8 RGB arrays.

Every image comes back as ``uint8`` of shape ``[H, W, 3]``:

- grayscale (``[H, W]`` or ``[H, W, 1]``) is repeated into three channels;
- an alpha channel (RGBA, or grayscale + alpha) is dropped with a warning naming the file;
- 16-bit images are scaled to 8 bits (``round(v * 255 / 65535)``).

Any other layout, and any file that cannot be decoded, is an ``ImageReadError`` naming the file.
"""
from __future__ import annotations

import os
import warnings
from typing import List, Sequence, Union

import imageio.v3 as iio
import numpy as np

IMAGE_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg")

PathLike = Union[str, os.PathLike]


class ImageReadError(ValueError):
    """An image file that cannot be used (unreadable, empty, or an unsupported layout)."""


def list_images(folders: Union[PathLike, Sequence[PathLike]]) -> List[str]:
    """The image files (PNG/BMP/JPEG, any case) directly inside ``folders``, sorted by path.

    ``folders`` is one folder or a list of them.  A missing folder, a path that is not a folder,
    and a folder without images are each a ``FileNotFoundError`` naming the folder.
    """
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    paths: List[str] = []
    for folder in folders:
        folder = os.fspath(folder)
        if not os.path.exists(folder):
            raise FileNotFoundError(f"{folder}: image folder does not exist")
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder}: is not a folder (expected a folder of HR images)")
        found = [os.path.join(folder, name) for name in os.listdir(folder)
                 if name.lower().endswith(IMAGE_EXTENSIONS)
                 and os.path.isfile(os.path.join(folder, name))]
        if not found:
            raise FileNotFoundError(
                f"{folder}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)} files)")
        paths.extend(found)
    return sorted(paths)


def read_image(path: PathLike) -> np.ndarray:
    """The image at ``path`` as ``uint8`` RGB, shape ``[H, W, 3]`` (see the module docstring)."""
    path = os.fspath(path)
    try:
        image = np.asarray(iio.imread(path))
    except Exception as exc:  # imageio raises many types (OSError, ValueError, plugin errors)
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise ImageReadError(f"{path}: cannot read image ({type(exc).__name__}: {reason})") from None
    return to_rgb_uint8(image, path)


def to_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Convert a decoded image array to ``uint8`` ``[H, W, 3]``; ``name`` is used in messages."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageReadError(f"{name}: expected a 2-D image, got an array of shape {image.shape}")
    channels = image.shape[2]
    if channels in (2, 4):
        warnings.warn(f"{name}: dropping the alpha channel", stacklevel=3)
        image = image[:, :, :channels - 1]
        channels -= 1
    if channels == 1:
        image = np.repeat(image, 3, axis=2)
    elif channels != 3:
        raise ImageReadError(f"{name}: unsupported number of channels {channels} "
                             f"(expected gray, gray+alpha, RGB or RGBA)")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if image.dtype == np.uint16:
        scaled = np.round(image.astype(np.float64) * (255.0 / 65535.0))
        return scaled.astype(np.uint8)
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    raise ImageReadError(f"{name}: unsupported pixel type {image.dtype} (expected 8- or 16-bit)")

