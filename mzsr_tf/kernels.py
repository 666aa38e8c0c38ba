"""Gaussian blur kernels with the reference's conventions, random task kernels, ``.mat`` kernel files.

Conventions of the reference (github ``JWSoh/MZSR``, ``gkernel.py``):

* the covariance is ``Sigma = R(theta) diag(l1, l2) R(theta)^T``: ``l1``, ``l2`` are its *eigenvalues*
  (variances along the rotated axes), so the benchmark kernel ``g2.0`` is ``isotropic_gaussian(ksize,
  2.0)``, a variance of 2.0 (sigma = sqrt(2));
* pixel ``(row, col)`` sits at ``x = col - c``, ``y = row - c`` with ``c = ksize / 2 - 0.5`` (the
  centre is a pixel for odd sizes, between pixels for even sizes), ``theta`` turns x towards y;
* kernels are ``exp(-0.5 p^T Sigma^-1 p)`` normalised to sum 1, float64 ``[ksize, ksize]``.

The random task kernel of meta-training (the reference's ``generate_kernel``) draws
``theta ~ U[0, pi)``, ``l1 = 1 + (k1 - 1) u1``, ``l2 = 1 + (l1 - 1) u2`` with ``u1, u2 ~ U[0, 1)``;
the reference calls it with ``k1 = 2.5 * scale`` and ``ksize = 15``.  Randomness is passed in: a
``np.random.Generator`` (:func:`generate_kernel`) or a TF stateless seed (:func:`tf_random_kernel`).

The meta-test takes each input's kernel from a :class:`KernelSource`: one kernel file for every
image, none (bicubic degradation), a folder holding ``<image stem>.mat`` per image, or any function
of the image (a kernel estimator).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
from typing import Callable, NamedTuple, Optional, Union

import numpy as np
import tensorflow as tf

from mzsr_tf.degradation import CUBIC

KERNEL_KEY = "kernel"
SUM_TOLERANCE = 1e-3
"""How far from 1 a blur kernel's sum may be (a kernel read from a file is float32, or rounded)."""
NEGATIVE_TOLERANCE = 1e-3
"""How negative an entry may be, relative to the largest (rounding noise of an estimated kernel)."""


class KernelError(ValueError):
    """A kernel file or kernel array that cannot be used; the message names the file."""


def tf_anisotropic_gaussian(ksize: int, theta, l1, l2, dtype=tf.float64):
    """TensorFlow :func:`anisotropic_gaussian`: ``theta``, ``l1``, ``l2`` may be scalar tensors.

    Computed in float64 (closed-form inverse covariance) and returned as ``[ksize, ksize]`` ``dtype``.
    """
    # tf.convert_to_tensor(dtype=float64) keeps Python floats exact (tf.cast would go through float32).
    theta, l1, l2 = (tf.cast(tf.convert_to_tensor(v, dtype_hint=tf.float64), tf.float64)
                     for v in (theta, l1, l2))
    cos, sin = tf.cos(theta), tf.sin(theta)
    # Sigma^-1 = R diag(1/l1, 1/l2) R^T.
    inv_xx = cos * cos / l1 + sin * sin / l2
    inv_yy = sin * sin / l1 + cos * cos / l2
    inv_xy = cos * sin * (1.0 / l1 - 1.0 / l2)
    centre = ksize / 2.0 - 0.5
    coords = tf.cast(tf.range(ksize), tf.float64) - centre
    x = coords[None, :]
    y = coords[:, None]
    quadratic = inv_xx * x * x + 2.0 * inv_xy * x * y + inv_yy * y * y
    kernel = tf.exp(-0.5 * quadratic)
    return tf.cast(kernel / tf.reduce_sum(kernel), dtype)


def _check_ksize(ksize) -> int:
    if isinstance(ksize, bool) or not isinstance(ksize, (int, np.integer)) or ksize < 1:
        raise KernelError(f"kernel size must be a positive integer, got {ksize!r}")
    return int(ksize)


def anisotropic_gaussian(ksize: int, theta: float, l1: float, l2: float) -> np.ndarray:
    """Anisotropic Gaussian kernel, float64 ``[ksize, ksize]`` summing to 1 (reference conventions).

    Args:
      ksize: kernel size (odd or even).
      theta: rotation angle in radians (the reference samples [0, pi)).
      l1, l2: covariance eigenvalues (variances), positive.
    """
    ksize = _check_ksize(ksize)
    for name, value in (("l1", l1), ("l2", l2)):
        if not (np.isfinite(value) and value > 0):
            raise KernelError(f"Gaussian kernel eigenvalue {name} must be positive and finite, got {value!r}")
    if not np.isfinite(theta):
        raise KernelError(f"Gaussian kernel angle theta must be finite, got {theta!r}")
    return tf_anisotropic_gaussian(ksize, float(theta), float(l1), float(l2)).numpy()


def isotropic_gaussian(ksize: int, var: float) -> np.ndarray:
    """Isotropic Gaussian kernel of variance ``var`` (``g2.0`` is ``var=2.0``), float64 ``[ksize, ksize]``."""
    return anisotropic_gaussian(ksize, 0.0, var, var)


def random_kernel_parameters(k1: float, u_theta, u1, u2, min_eigenvalue: float = 1.0,
                             log_uniform: bool = False):
    """``(theta, l1, l2)`` of a random task kernel from three uniforms in [0, 1) (numbers or tensors).

    ``theta = pi u_theta``, ``l1`` uniform in ``[m, k1)``, ``l2`` uniform in ``[m, l1)`` with ``m =
    min_eigenvalue``; the reference's ``m`` is 1 (no task kernel sharper than variance 1).  With
    ``log_uniform`` (not in the reference) the eigenvalues are log-uniform over the same ranges instead:
    ``l1 = m (k1 / m) ** u1``, ``l2 = m (l1 / m) ** u2`` (with ``m = 0.2`` and ``k1 = 5``, as many ``l1``
    between variances 0.2 and 1 as between 1 and 5).
    """
    theta = math.pi * u_theta
    if log_uniform:
        l1 = min_eigenvalue * (k1 / min_eigenvalue) ** u1
        l2 = min_eigenvalue * (l1 / min_eigenvalue) ** u2
    else:
        l1 = min_eigenvalue + (k1 - min_eigenvalue) * u1
        l2 = min_eigenvalue + (l1 - min_eigenvalue) * u2
    return theta, l1, l2


def _check_min_eigenvalue(min_eigenvalue, where: str):
    if not (np.isfinite(min_eigenvalue) and min_eigenvalue > 0):
        raise KernelError(f"{where}: min_eigenvalue must be > 0, got {min_eigenvalue!r}")


def _check_eigenvalue_range(k1, min_eigenvalue, where: str):
    _check_min_eigenvalue(min_eigenvalue, where)
    if not (np.isfinite(k1) and k1 >= min_eigenvalue):
        raise KernelError(f"{where}: k1 must be >= min_eigenvalue ({min_eigenvalue}), got {k1!r}")


def generate_kernel(k1: float, ksize: int = 15, rng: np.random.Generator = None,
                    min_eigenvalue: float = 1.0) -> np.ndarray:
    """The reference's random anisotropic task kernel, float64 ``[ksize, ksize]``.

    ``k1`` bounds the larger eigenvalue (``l1`` in ``[min_eigenvalue, k1)``, ``min_eigenvalue`` 1 in the
    reference); ``rng`` draws, in order, theta, l1, l2.
    """
    if rng is None:
        raise KernelError("generate_kernel needs rng, a np.random.Generator (randomness is explicit)")
    _check_eigenvalue_range(k1, min_eigenvalue, "generate_kernel")
    u_theta, u1, u2 = rng.random(3)
    return anisotropic_gaussian(ksize, *random_kernel_parameters(float(k1), u_theta, u1, u2,
                                                                 float(min_eigenvalue)))


def identity_kernel(ksize: int) -> np.ndarray:
    """The kernel that does not blur: float32 ``[ksize, ksize]``, one at the centre, zeros elsewhere (odd ``ksize``)."""
    ksize = _check_ksize(ksize)
    if ksize % 2 == 0:
        raise ValueError(f"identity_kernel: an even size ({ksize}) has no centre pixel")
    kernel = np.zeros((ksize, ksize), np.float32)
    kernel[ksize // 2, ksize // 2] = 1.0
    return kernel


def tf_random_kernel(seed, k1, ksize: int = 15, min_eigenvalue: float = 1.0, isotropic=False,
                     log_uniform: bool = False):
    """Random task kernel from a TF stateless seed, float32 ``[ksize, ksize]``, for ``tf.data`` maps.

    Args:
      seed: int32/int64 tensor of shape ``[2]`` (``tf.random.stateless_uniform`` seed).
      k1: upper bound of the larger eigenvalue (number or float scalar tensor), ``>= min_eigenvalue``.
      ksize: kernel size (Python int).
      min_eigenvalue: lower bound of both eigenvalues (Python number > 0; the reference's is 1).
      isotropic: bool (or bool scalar tensor): if true, ``l2 = l1`` (an isotropic Gaussian of variance
        ``l1``, drawn as the anisotropic kernel's ``l1``; not in the reference).
      log_uniform: Python bool: log-uniform eigenvalues (see :func:`random_kernel_parameters`; not in the
        reference).

    Same distribution as :func:`generate_kernel` when neither ``isotropic`` nor ``log_uniform`` (not the
    same numbers: another generator); the same seed gives the same ``theta`` and ``l1`` whether ``isotropic``
    or not, and the same three uniforms whether ``log_uniform`` or not.
    """
    ksize = _check_ksize(ksize)
    _check_min_eigenvalue(min_eigenvalue, "tf_random_kernel")  # k1 may be a tensor: not checked here
    uniforms = tf.random.stateless_uniform([3], seed=seed, dtype=tf.float64)
    k1 = tf.cast(tf.convert_to_tensor(k1, dtype_hint=tf.float64), tf.float64)
    theta, l1, l2 = random_kernel_parameters(k1, uniforms[0], uniforms[1], uniforms[2], float(min_eigenvalue),
                                             log_uniform=bool(log_uniform))
    l2 = tf.where(tf.cast(isotropic, tf.bool), l1, l2)
    return tf_anisotropic_gaussian(ksize, theta, l1, l2, dtype=tf.float32)


def check_kernel(kernel, source: str = "kernel", normalize: bool = False) -> np.ndarray:
    """Validate a blur kernel: a finite 2-D real array of non-negative weights summing to 1; returns
    it as float64.

    A blur kernel is a weighted average of pixels, so it keeps the image's brightness: a sum further
    than ``SUM_TOLERANCE`` from 1 (e.g. a kernel saved unnormalised, or ten times a kernel) is a
    :class:`KernelError` saying the sum, unless ``normalize``, which divides the kernel by its sum
    (``--normalize-kernel``).  Negative entries are refused (whether or not ``normalize``), except
    rounding noise down to ``-NEGATIVE_TOLERANCE`` times the largest entry, kept as it is.
    ``source`` names where the kernel came from (a file path) in the messages.
    """
    array = np.asarray(kernel)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise KernelError(f"{source}: kernel must be a real numeric array, got dtype {array.dtype}")
    if array.ndim != 2 or array.size == 0:
        raise KernelError(f"{source}: kernel must be a non-empty 2-D array, got shape {array.shape}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise KernelError(f"{source}: kernel has non-finite values (NaN or Inf)")
    total = float(array.sum())
    if not total > 0:
        raise KernelError(f"{source}: kernel must have a positive sum, got sum {total:g}")
    smallest, largest = float(array.min()), float(array.max())
    if smallest < -NEGATIVE_TOLERANCE * largest:
        raise KernelError(f"{source}: kernel has negative entries (smallest {smallest:.4g}, largest "
                          f"{largest:.4g}); a blur kernel is a weighted average of pixels")
    if abs(total - 1.0) > SUM_TOLERANCE:
        if not normalize:
            raise KernelError(f"{source}: kernel sums to {total:.6g}, not 1 (a blur kernel keeps the "
                              f"image's brightness); divide it by its sum, or pass --normalize-kernel")
        array = array / total
    return array


def even_size_warning(kernel: np.ndarray, source: str) -> Optional[str]:
    """The ``warning:`` line for a kernel of even height or width (accepted, as the reference does), saying
    where its centre falls; ``None`` for an odd-sized kernel."""
    height, width = kernel.shape
    if height % 2 and width % 2:
        return None
    return (f"warning: {source}: the kernel is {height}x{width}, an even size: its centre falls between pixels, "
            f"at row {(height - 1) / 2:g}, column {(width - 1) / 2:g} (0 = its first), so the son is shifted by "
            "half a pixel against the input")


def _warn_if_even(kernel: np.ndarray, source: str) -> np.ndarray:
    warning = even_size_warning(kernel, source)
    if warning:
        logging.getLogger(__name__).info("%s", warning)
    return kernel


def _read_mat_v73(path: str):
    """The ``kernel`` variable of a MATLAB v7.3 (HDF5) file, transposed to row-major, and the keys."""
    import h5py

    with h5py.File(path, "r") as handle:
        keys = sorted(handle.keys())
        if KERNEL_KEY not in keys:
            return None, keys
        return np.asarray(handle[KERNEL_KEY]).T, keys


def load_kernel(path: Union[str, os.PathLike], normalize: bool = False) -> np.ndarray:
    """Read a blur kernel from a ``.mat`` file (variable ``kernel``, as the reference), float64 2-D.

    ``normalize``: divide it by its sum instead of refusing a sum other than 1 (:func:`check_kernel`).

    Raises:
      KernelError: the file is missing or unreadable, has no ``kernel`` variable (the message lists the
        variables present), or the array is not 2-D, has non-finite values, negative entries, or a
        sum other than 1 (without ``normalize``).
    """
    path = os.fspath(path)
    return check_kernel(_read_kernel(path), source=path, normalize=normalize)


def _read_kernel(path: str):
    """The ``kernel`` variable of a ``.mat`` file as stored, unchecked (errors: :func:`load_kernel`'s)."""
    import scipy.io

    if not os.path.isfile(path):
        raise KernelError(f"{path}: kernel file not found")
    try:
        contents = scipy.io.loadmat(path)
        keys = sorted(k for k in contents if not k.startswith("__"))
        kernel = contents.get(KERNEL_KEY)
    except NotImplementedError:  # MATLAB v7.3 files are HDF5
        kernel, keys = _read_mat_v73(path)
    except Exception as error:  # scipy raises several types for a file that is not a .mat file
        raise KernelError(f"{path}: cannot read as a MATLAB .mat file ({error})") from None
    if kernel is None:
        raise KernelError(f"{path}: no variable {KERNEL_KEY!r} in the .mat file; variables present: "
                          f"{', '.join(keys) if keys else '(none)'}")
    return kernel


def save_kernel(path: Union[str, os.PathLike], kernel) -> None:
    """Write a blur kernel to a ``.mat`` file under the variable ``kernel`` (validated first), atomically."""
    import scipy.io

    from mzsr_tf import atomic
    path = os.fspath(path)
    checked = check_kernel(kernel, source=path)
    with atomic.atomic_path(path) as temporary:
        with open(temporary, "wb") as f:  # a file object: savemat would append '.mat' to a name
            scipy.io.savemat(f, {KERNEL_KEY: checked})


# --------------------------------------------------------------------------- the kernel of each image

class ImageKernel(NamedTuple):
    """The blur kernel of one input image.

    ``kernel``: float64 ``[k, k]`` summing to 1 (within ``SUM_TOLERANCE``), or None for bicubic
    degradation (``'cubic'``);
    ``origin``: where it came from, for records and messages (a ``.mat`` path, or ``'cubic'``).
    """

    kernel: Optional[np.ndarray]
    origin: str


@dataclasses.dataclass(frozen=True)
class KernelSource:
    """Where the meta-test takes each input's blur kernel from: ``kernel_for(image_path) -> ImageKernel``.

    Build one with :meth:`bicubic`, :meth:`fixed`, :meth:`from_file`, :meth:`from_folder` or
    :meth:`from_path` (the ``--kernelpath`` flag); a kernel estimator is
    ``KernelSource(name, description, lookup)`` with its own ``lookup(image_path) -> ImageKernel``.
    Every builder but :meth:`bicubic` takes ``normalize``: kernels whose sum is not 1 are divided by
    their sum instead of refused (``--normalize-kernel``; :func:`check_kernel`).

    Fields: ``name`` is what ``results.json`` records as the run's kernel (the file, the folder, or
    ``'cubic'``), ``description`` one line for the log, ``lookup`` the function of the image path.

    Example::

        source = KernelSource.from_folder("kernels")                # kernels/<image stem>.mat
        kernel, origin = source.kernel_for("Input/baby.png")        # reads kernels/baby.mat
        source = KernelSource.from_path(flags.kernelpath)           # a file, a folder, or '' (bicubic)
    """

    name: str
    description: str
    lookup: Callable[[str], ImageKernel] = dataclasses.field(repr=False, compare=False)

    def kernel_for(self, image_path: Union[str, os.PathLike]) -> ImageKernel:
        """The blur kernel of the image at ``image_path`` (raises :class:`KernelError` if there is none)."""
        return self.lookup(os.fspath(image_path))

    @classmethod
    def bicubic(cls) -> "KernelSource":
        """No kernel: every son is made by bicubic (``'cubic'``) down-sampling."""
        return cls(CUBIC, "no kernel: the son is made by bicubic ('cubic') down-sampling",
                   lambda image_path: ImageKernel(None, CUBIC))

    @classmethod
    def fixed(cls, kernel, origin: str, normalize: bool = False) -> "KernelSource":
        """One kernel (a 2-D array, checked) for every image; ``origin`` names it (e.g. its file)."""
        checked = _warn_if_even(check_kernel(kernel, source=origin, normalize=normalize), origin)
        description = f"kernel {origin} ({checked.shape[0]}x{checked.shape[1]})"
        if normalize:
            description += f", normalised to sum 1 (its sum: {np.asarray(kernel, np.float64).sum():.6g})"
        return cls(origin, description, lambda image_path: ImageKernel(checked, origin))

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike], normalize: bool = False) -> "KernelSource":
        """The kernel of one ``.mat`` file for every image (read now: :func:`load_kernel`'s errors)."""
        path = os.fspath(path)
        return cls.fixed(_read_kernel(path), path, normalize=normalize)

    @classmethod
    def from_folder(cls, folder: Union[str, os.PathLike], normalize: bool = False) -> "KernelSource":
        """One kernel per image: ``<folder>/<image stem>.mat`` for the image ``.../<image stem>.<ext>``.

        Each file is read when its image is looked up; a missing one is a :class:`KernelError`
        naming the image and the folder.
        """
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            raise KernelError(f"kernel folder {folder} does not exist")

        def lookup(image_path: str) -> ImageKernel:
            stem = os.path.splitext(os.path.basename(image_path))[0]
            path = os.path.join(folder, stem + ".mat")
            if not os.path.isfile(path):
                raise KernelError(f"no kernel for image {image_path} in kernel folder {folder} "
                                  f"(expected {stem}.mat)")
            return ImageKernel(_warn_if_even(load_kernel(path, normalize=normalize), path), path)

        description = f"kernels: one per image, {os.path.join(folder, '<image name>.mat')}"
        if normalize:
            description += ", each normalised to sum 1"
        return cls(folder, description, lookup)

    @classmethod
    def from_path(cls, path: Optional[Union[str, os.PathLike]], normalize: bool = False) -> "KernelSource":
        """``--kernelpath``: ``''``/None is :meth:`bicubic`, a folder :meth:`from_folder`, else
        :meth:`from_file`; ``normalize`` (``--normalize-kernel``) is passed on."""
        if not path:
            return cls.bicubic()
        if os.path.isdir(path):
            return cls.from_folder(path, normalize=normalize)
        return cls.from_file(path, normalize=normalize)
