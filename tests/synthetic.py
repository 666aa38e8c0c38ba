"""Synthetic test images: varied, smooth, reproducible (no constant images, which any resize preserves)."""
import numpy as np


def cosine_image(rng: np.random.Generator, height: int, width: int, waves: int = 4,
                 frequencies=(0.5, 6.0)) -> np.ndarray:
    """Sum of ``waves`` random plane cosines per channel, rescaled to [0, 1]; float64 ``[H, W, 3]``.

    Per wave it draws a vertical and a horizontal frequency in ``frequencies`` (cycles per image) and a
    phase, in that order, so a given ``rng`` state always gives the same image.
    """
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.zeros((height, width, 3))
    for c in range(3):
        for _ in range(waves):
            fy, fx, phase = rng.uniform(*frequencies), rng.uniform(*frequencies), rng.uniform(0, 2 * np.pi)
            image[..., c] += np.cos(2 * np.pi * (fy * y + fx * x) + phase)
    return (image - image.min()) / (image.max() - image.min())
