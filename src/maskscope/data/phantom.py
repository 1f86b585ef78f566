"""A synthetic 3D scan: a body with organs, a cyst, a spine and one lesion to segment.

The phantom is a loose stand-in for a CT/MR volume, not an anatomical model. In channel 0 the
lesion is the brightest round structure; the spine is as bright but is a tube running through the
whole body, so a model must use shape as well as intensity. An optional channel 1 is another
"modality" with different contrasts (the cyst is bright, the lesion only moderately so).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["PHANTOM_SPACING", "PhantomSample", "phantom3d", "phantom3d_batch"]

#: Physical voxel size (depth, height, width) of the phantom, in millimetres.
PHANTOM_SPACING: tuple[float, float, float] = (2.0, 1.0, 1.0)

_BATCH_STREAM = 0x9A47  # keeps batch samples apart from ``phantom3d(seed)`` samples
_REFERENCE_EXTENT = 96.0  # structure sizes below are in mm for a 96 mm wide volume

# Mean intensity of each structure per channel (channel 0, channel 1), painted in this order.
_CONTRAST: dict[str, tuple[float, float]] = {
    "body": (0.30, 0.35),
    "organ_a": (0.50, 0.25),
    "organ_b": (0.42, 0.60),
    "cyst": (0.12, 0.90),
    "spine": (0.88, 0.15),
    "lesion": (0.88, 0.50),
}


@dataclass(frozen=True, eq=False)
class PhantomSample:
    """One synthetic 3D scan.

    Attributes
    ----------
    image : numpy.ndarray
        ``(channels, D, H, W)`` float32, roughly in [0, 1].
    label : numpy.ndarray
        ``(D, H, W)`` uint8, 1 on the lesion.
    masks : dict of str to numpy.ndarray
        ``(D, H, W)`` bool masks of ``"body"``, ``"organ_a"``, ``"organ_b"``, ``"cyst"``,
        ``"spine"`` and ``"lesion"``. ``"body"`` contains all the others, which are disjoint
        (the lesion lies inside organ a and is cut out of its mask).
    voxel_spacing : tuple of float
        Physical voxel size per axis, ``(2.0, 1.0, 1.0)`` (mm).
    """

    image: np.ndarray
    label: np.ndarray
    masks: dict[str, np.ndarray]
    voxel_spacing: tuple[float, float, float] = field(default=PHANTOM_SPACING)


def _interp_matrix(n: int, knots: int) -> np.ndarray:
    """Matrix ``(n, knots)`` that linearly interpolates ``knots`` values onto ``n`` points."""
    t = np.linspace(0.0, knots - 1.0, n)
    return np.stack([np.interp(t, np.arange(knots), np.eye(knots)[j]) for j in range(knots)], 1)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], knots: int) -> np.ndarray:
    """Smooth random field of ``shape``, about unit standard deviation."""
    coarse = rng.standard_normal((knots,) * len(shape))
    out = coarse
    for axis, n in enumerate(shape):
        out = np.moveaxis(np.tensordot(_interp_matrix(n, knots), out, axes=(1, axis)), 0, axis)
    return (out / max(float(out.std()), 1e-6)).astype(np.float32)


def _blob(
    coords: tuple[np.ndarray, ...],
    center: np.ndarray,
    radii: np.ndarray,
    angle: float,
    wobble: np.ndarray,
    amount: float,
) -> np.ndarray:
    """Mask of an ellipsoid rotated by ``angle`` in the (H, W) plane, deformed by ``wobble``."""
    z, y, x = (c - m for c, m in zip(coords, center, strict=True))
    u = np.cos(angle) * y + np.sin(angle) * x
    v = -np.sin(angle) * y + np.cos(angle) * x
    level = (z / radii[0]) ** 2 + (u / radii[1]) ** 2 + (v / radii[2]) ** 2
    return level + amount * wobble <= 1.0


def _inside(
    center: np.ndarray,
    box: np.ndarray,
    host_center: np.ndarray,
    host_radii: np.ndarray,
    margin: float,
) -> bool:
    """Whether a box of half-sizes ``box`` at ``center`` fits in a host ellipsoid, roughly.

    The box centre must lie in the host ellipsoid shrunk by ``box + margin`` along each axis.
    """
    room = host_radii - box - margin
    if np.any(room <= 0):
        return False
    return bool((((center - host_center) / room) ** 2).sum() <= 1.0)


def _apart(
    center: np.ndarray, box: np.ndarray, others: list[tuple[np.ndarray, np.ndarray]], gap: float
) -> bool:
    """Whether a box keeps ``gap`` from every box in ``others`` along at least one axis."""
    return all(np.any(np.abs(center - c) >= box + b + gap) for c, b in others)


_ORGAN_SIZES = {"organ_a": (15.0, 20.0), "organ_b": (9.0, 13.0), "cyst": (4.0, 7.0)}


def _layout(
    rng: np.random.Generator,
    body_c: np.ndarray,
    body_r: np.ndarray,
    spine_yx: np.ndarray,
    spine_r: float,
    gap: float,
    scale: float,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Draw centres and radii of the organs and the cyst: inside the body, apart, off the spine."""
    for _ in range(200):
        layout: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        boxes: list[tuple[np.ndarray, np.ndarray]] = []
        for name, (lo, hi) in _ORGAN_SIZES.items():
            for _ in range(100):
                radii = rng.uniform(lo, hi, 3) * scale
                radii[0] *= rng.uniform(1.0, 1.5)  # organs are longer along the body axis
                box = np.array([radii[0], radii[1:].max(), radii[1:].max()])  # any rotation
                center = body_c + rng.uniform(-1, 1, 3) * np.maximum(body_r - box - gap, 0.0)
                off_spine = np.linalg.norm(center[1:] - spine_yx) >= box[1] + spine_r + gap
                if (
                    off_spine
                    and _inside(center, box, body_c, body_r, gap)
                    and _apart(center, box, boxes, gap)
                ):
                    boxes.append((center, box))
                    layout[name] = (center, radii)
                    break
            else:
                break
        if len(layout) == len(_ORGAN_SIZES):
            return layout
    raise RuntimeError("could not place the organs; the volume is too small")


def _draw(rng: np.random.Generator, shape: tuple[int, int, int], channels: int) -> PhantomSample:
    """Draw one phantom from ``rng``."""
    spacing = np.asarray(PHANTOM_SPACING)
    extent = np.asarray(shape) * spacing
    scale = float(min(extent[1:])) / _REFERENCE_EXTENT
    coords = tuple(
        ((np.arange(n) + 0.5) * s).reshape([-1 if a == i else 1 for a in range(3)])
        for i, (n, s) in enumerate(zip(shape, spacing, strict=True))
    )
    wobble = _smooth_field(rng, shape, 6)

    body_c = extent / 2 + rng.uniform(-2, 2, 3) * scale
    body_r = extent * np.array(
        [rng.uniform(0.4, 0.46), rng.uniform(0.38, 0.44), rng.uniform(0.42, 0.47)]
    )
    geometry: dict[str, np.ndarray] = {}
    geometry["body"] = _blob(coords, body_c, body_r, 0.0, wobble, 0.08)

    # Spine: a tube along the depth axis near the back of the body, through all of it.
    spine_c = body_c + np.array(
        [0.0, body_r[1] * rng.uniform(0.55, 0.65), rng.uniform(-3, 3) * scale]
    )
    spine_r = rng.uniform(4.5, 6.5) * scale
    spine_radii = np.array([1e6, spine_r, spine_r])
    geometry["spine"] = _blob(coords, spine_c, spine_radii, 0.0, wobble, 0.05) & geometry["body"]

    layout = _layout(rng, body_c, body_r, spine_c[1:], spine_r, 3 * scale, scale)
    for name, (center, radii) in layout.items():
        geometry[name] = _blob(coords, center, radii, rng.uniform(0, np.pi), wobble, 0.1)

    # Lesion: a roughly round blob well inside organ a.
    organ_c, organ_r = layout["organ_a"]
    lesion_r = rng.uniform(6.0, 10.0) * scale
    lesion_radii = lesion_r * rng.uniform(0.85, 1.15, 3)
    organ_box = np.array([organ_r[0], organ_r[1:].min(), organ_r[1:].min()])  # any rotation
    room = np.maximum(organ_box - lesion_radii.max() - 3 * scale, 0.0) / np.sqrt(3)
    lesion_c = organ_c + rng.uniform(-1, 1, 3) * room
    geometry["lesion"] = _blob(coords, lesion_c, lesion_radii, 0.0, wobble, 0.05)
    geometry["lesion"] &= geometry["organ_a"]

    masks: dict[str, np.ndarray] = {"body": geometry["body"]}
    taken = np.zeros(shape, dtype=bool)
    for name in ("lesion", "spine", "cyst", "organ_b", "organ_a"):
        masks[name] = geometry[name] & geometry["body"] & ~taken
        taken |= masks[name]

    image = np.zeros((channels, *shape), dtype=np.float32)
    for ch in range(channels):
        bias = 1.0 + 0.08 * _smooth_field(rng, shape, 4)
        volume = np.zeros(shape, dtype=np.float32)
        for name in _CONTRAST:
            level = _CONTRAST[name][min(ch, 1)] + rng.uniform(-0.03, 0.03)
            volume[masks[name]] = level
        texture = 0.02 * _smooth_field(rng, shape, 12)
        volume = (volume + texture * masks["body"]) * bias
        volume += rng.normal(0.0, 0.03, size=shape).astype(np.float32)
        image[ch] = np.clip(volume, 0.0, 1.0)

    ordered = {name: masks[name] for name in _CONTRAST}
    return PhantomSample(image=image, label=masks["lesion"].astype(np.uint8), masks=ordered)


def phantom3d(
    seed: int = 0, *, shape: tuple[int, int, int] = (64, 96, 96), channels: int = 1
) -> PhantomSample:
    """Generate one synthetic 3D scan with a lesion to segment.

    Parameters
    ----------
    seed : int
        Seed of the random generator: the same seed gives the same phantom.
    shape : tuple of int
        ``(D, H, W)`` in voxels; voxels are 2 × 1 × 1 mm and structures scale with ``H`` and ``W``.
    channels : {1, 2}
        Number of image channels ("modalities"). The lesion can be found from channel 0 alone.

    Returns
    -------
    PhantomSample
        The image, the lesion label, the mask of every structure and the voxel spacing.

    Examples
    --------
    >>> sample = phantom3d(0, channels=2)
    >>> sample.image.shape, sample.voxel_spacing
    ((2, 64, 96, 96), (2.0, 1.0, 1.0))
    """
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels!r}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 24:
        raise ValueError(f"shape must be three sizes of at least 24 voxels, got {shape!r}")
    return _draw(np.random.default_rng(seed), shape, channels)


def phantom3d_batch(
    n: int, seed: int = 0, *, shape: tuple[int, int, int] = (64, 96, 96), channels: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` training phantoms.

    Sample ``i`` comes from a random stream keyed by ``(seed, i)`` that is independent of the
    streams used by :func:`phantom3d`.

    Parameters
    ----------
    n : int
        Number of phantoms.
    seed : int
        Seed of the batch.
    shape : tuple of int
        ``(D, H, W)`` in voxels.
    channels : {1, 2}
        Number of image channels.

    Returns
    -------
    images : numpy.ndarray
        ``(n, channels, D, H, W)`` float32.
    labels : numpy.ndarray
        ``(n, D, H, W)`` int64.
    """
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels!r}")
    shape = tuple(int(s) for s in shape)
    images = np.empty((n, channels, *shape), dtype=np.float32)
    labels = np.empty((n, *shape), dtype=np.int64)
    for i in range(n):
        sample = _draw(np.random.default_rng([_BATCH_STREAM, seed, i]), shape, channels)
        images[i] = sample.image
        labels[i] = sample.label
    return images, labels
