"""A 2D shapes data set where the segmented object depends on another part of the image.

Each image holds a cross and a triangle in its left half and either a circle or a square in its
right half. The label marks the triangle when the right shape is a circle and the cross when it is
a square: the right shape decides *what* is segmented but is never part of the segmentation. A good
explanation of a model trained on it highlights the right shape as well as the segmented one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["RIGHT_SHAPES", "ShapesSample", "shapes2d", "shapes2d_batch"]

#: The shapes that can appear in the right half of the image.
RIGHT_SHAPES: tuple[str, ...] = ("circle", "square")

_BATCH_STREAM = 0x5A4E  # keeps batch samples apart from ``shapes2d(seed)`` samples
_REFERENCE_SIZE = 240  # shape sizes below are given for this image size and scaled with it
_MIN_HALF, _MAX_HALF = 14.0, 26.0  # half-extent of a shape (pixels at the reference size)
_GAP = 5.0  # minimum distance between shapes and from the image border and the midline


@dataclass(frozen=True, eq=False)
class ShapesSample:
    """One image of the 2D shapes data set.

    Attributes
    ----------
    image : numpy.ndarray
        ``(1, size, size)`` float32 in [0, 1].
    label : numpy.ndarray
        ``(size, size)`` uint8: 1 on the triangle when the right shape is a circle, 1 on the cross
        when it is a square, 0 elsewhere.
    masks : dict of str to numpy.ndarray
        ``(size, size)`` bool masks of ``"cross"``, ``"triangle"`` and the right shape
        (``"circle"`` or ``"square"``). They are disjoint.
    right_shape : str
        ``"circle"`` or ``"square"``.
    voxel_spacing : tuple of float
        Physical size of a pixel per axis, ``(1.0, 1.0)``.
    """

    image: np.ndarray
    label: np.ndarray
    masks: dict[str, np.ndarray]
    right_shape: str
    voxel_spacing: tuple[float, float] = field(default=(1.0, 1.0))

    @property
    def target(self) -> str:
        """Name of the segmented shape: ``"triangle"`` or ``"cross"``."""
        return "triangle" if self.right_shape == "circle" else "cross"


def _shape_mask(
    kind: str,
    yy: np.ndarray,
    xx: np.ndarray,
    cy: float,
    cx: float,
    half: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Rasterise one shape of half-extent ``half`` centred at ``(cy, cx)`` (pixel centres)."""
    dy, dx = yy - cy, xx - cx
    if kind == "circle":
        return dy**2 + dx**2 <= half**2
    if kind == "square":
        return (np.abs(dy) <= half) & (np.abs(dx) <= half)
    if kind == "cross":
        arm = half * rng.uniform(0.28, 0.4)
        return ((np.abs(dy) <= arm) & (np.abs(dx) <= half)) | (
            (np.abs(dx) <= arm) & (np.abs(dy) <= half)
        )
    if kind == "triangle":
        # Upright isosceles triangle filling the box [-half, half]²: apex at the top.
        t = (dy + half) / (2 * half)  # 0 at the apex row, 1 at the base row
        return (t >= 0) & (t <= 1) & (np.abs(dx) <= t * half)
    raise ValueError(f"unknown shape {kind!r}")


def _place(
    rng: np.random.Generator,
    half: float,
    x_range: tuple[float, float],
    size: int,
    others: list[tuple[float, float, float]],
    gap: float,
) -> tuple[float, float]:
    """Draw a centre so that the shape's box lies in ``x_range`` and keeps ``gap`` to ``others``."""
    for _ in range(1000):
        cy = rng.uniform(half + gap, size - 1 - half - gap)
        cx = rng.uniform(x_range[0] + half + gap, x_range[1] - half - gap)
        if all(
            abs(cy - oy) >= half + oh + gap or abs(cx - ox) >= half + oh + gap
            for oy, ox, oh in others
        ):
            return cy, cx
    raise RuntimeError("could not place a shape without overlap; the image is too small")


def _draw(rng: np.random.Generator, size: int, right: str | None) -> ShapesSample:
    """Draw one sample from ``rng``."""
    if right is None:
        right = RIGHT_SHAPES[int(rng.integers(2))]
    elif right not in RIGHT_SHAPES:
        raise ValueError(f"right must be one of {RIGHT_SHAPES} or None, got {right!r}")
    if size < 64:
        raise ValueError(f"size must be at least 64 pixels, got {size}")
    scale = size / _REFERENCE_SIZE
    gap = _GAP * scale
    mid = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)

    masks: dict[str, np.ndarray] = {}
    placed: list[tuple[float, float, float]] = []
    for kind, x_range in (
        ("cross", (0.0, mid)),
        ("triangle", (0.0, mid)),
        (right, (mid, size - 1.0)),
    ):
        half = rng.uniform(_MIN_HALF, _MAX_HALF) * scale
        cy, cx = _place(rng, half, x_range, size, placed, gap)
        placed.append((cy, cx, half))
        masks[kind] = _shape_mask(kind, yy, xx, cy, cx, half, rng)

    # Smooth background with a gentle gradient, one brightness per shape, mild noise.
    background = rng.uniform(0.02, 0.15)
    gy, gx = rng.uniform(-0.06, 0.06, size=2)
    image = background + gy * (yy / size - 0.5) + gx * (xx / size - 0.5)
    for mask in masks.values():
        image[mask] = rng.uniform(0.6, 0.95)
    image = image * rng.uniform(0.95, 1.05) + rng.normal(0.0, 0.03, size=image.shape)
    image = np.clip(image, 0.0, 1.0).astype(np.float32)[None]

    target = "triangle" if right == "circle" else "cross"
    label = masks[target].astype(np.uint8)
    return ShapesSample(image=image, label=label, masks=masks, right_shape=right)


def shapes2d(seed: int = 0, *, size: int = 240, right: str | None = None) -> ShapesSample:
    """Generate one image of the 2D shapes data set.

    Parameters
    ----------
    seed : int
        Seed of the random generator: the same seed gives the same sample.
    size : int
        Height and width of the image in pixels (at least 64). Shape sizes scale with it.
    right : {"circle", "square"} or None
        Shape in the right half; drawn at random when None.

    Returns
    -------
    ShapesSample
        The image, its label, the mask of every shape and the right shape's name.

    Examples
    --------
    >>> sample = shapes2d(3, right="circle")
    >>> sample.image.shape, sample.target
    ((1, 240, 240), 'triangle')
    """
    return _draw(np.random.default_rng(seed), size, right)


def shapes2d_batch(n: int, seed: int = 0, *, size: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` training images: a circle on the right of even ones, a square on odd ones.

    Sample ``i`` comes from a random stream keyed by ``(seed, i)`` that is independent of the
    streams used by :func:`shapes2d`, so batches never repeat a ``shapes2d(seed)`` sample.

    Parameters
    ----------
    n : int
        Number of images.
    seed : int
        Seed of the batch.
    size : int
        Height and width of the images.

    Returns
    -------
    images : numpy.ndarray
        ``(n, 1, size, size)`` float32.
    labels : numpy.ndarray
        ``(n, size, size)`` int64.
    """
    images = np.empty((n, 1, size, size), dtype=np.float32)
    labels = np.empty((n, size, size), dtype=np.int64)
    for i in range(n):
        rng = np.random.default_rng([_BATCH_STREAM, seed, i])
        sample = _draw(rng, size, RIGHT_SHAPES[i % 2])
        images[i] = sample.image
        labels[i] = sample.label
    return images, labels
