"""Image domains of the digits zoo: deterministic transforms of 8×8 digits that play DomainNet's
domains (painting, sketch, ...).

Every transform maps images in [0, 1] to images in [0, 1]; the random ones (rotation angle, noise,
shift) draw from a generator seeded by `(seed, domain)`, one draw per image in order, so the same
images and seed always give the same domain.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

#: rotation angles (degrees, counter-clockwise) of the `rotated` domain
ROTATION_RANGE = (35.0, 55.0)
#: standard deviation of the additive Gaussian noise of the `noisy` domain (pixels in [0, 1])
NOISE_STD = 0.45
#: Gaussian blur width of the `blurred` domain, in pixels
BLUR_SIGMA = 0.9
#: translations (pixels, per axis) of the `shifted` domain; (0, 0) excluded
SHIFTS = (-2, -1, 0, 1, 2)


def _original(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return images.copy()


def _rotated(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    angles = rng.uniform(*ROTATION_RANGE, size=len(images))
    return np.stack([ndimage.rotate(img, a, reshape=False, order=1, mode="constant", cval=0.0)
                     for img, a in zip(images, angles, strict=True)])


def _inverted(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return 1.0 - images


def _noisy(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return images + rng.normal(0.0, NOISE_STD, size=images.shape)


def _blurred(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    blurred = ndimage.gaussian_filter(images, sigma=(0, BLUR_SIGMA, BLUR_SIGMA), mode="constant")
    peak = blurred.max(axis=(1, 2), keepdims=True)
    return blurred / np.maximum(peak, 1e-12)  # restore contrast: blur alone only dims the digit


def _shifted(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    grid = np.array([(dy, dx) for dy in SHIFTS for dx in SHIFTS if (dy, dx) != (0, 0)])
    offsets = grid[rng.integers(len(grid), size=len(images))]
    return np.stack([ndimage.shift(img, off, order=0, mode="constant", cval=0.0)
                     for img, off in zip(images, offsets, strict=True)])


#: domain name → transform(images [N, 8, 8], rng) -> images [N, 8, 8]
DOMAINS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "original": _original,
    "rotated": _rotated,
    "inverted": _inverted,
    "noisy": _noisy,
    "blurred": _blurred,
    "shifted": _shifted,
}


def apply_domain(images: np.ndarray, domain: str, *, seed: int) -> np.ndarray:
    """Render `images` in `domain`.

    Args:
        images: grey images with values in [0, 1] (never mutated).
        domain: a key of `DOMAINS`.
        seed: with the domain name, seeds the per-image random draws.

    Shapes:
        images [N, H, W] -> [N, H, W] float32, values clipped to [0, 1].

    Raises:
        ValueError: unknown domain, or images not 3-D.
    """
    if domain not in DOMAINS:
        raise ValueError(f"apply_domain: unknown domain {domain!r}; valid domains: "
                         f"{sorted(DOMAINS)}")
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3:
        raise ValueError(f"apply_domain: images must be 3-D [N, H, W], got shape {images.shape}")
    key = list(domain.encode())  # stable across processes, unlike hash()
    rng = np.random.default_rng([seed, *key])
    out = DOMAINS[domain](images, rng)                                    # [N, H, W]
    return np.clip(out, 0.0, 1.0).astype(np.float32)
