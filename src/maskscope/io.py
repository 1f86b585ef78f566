"""Reading images and writing maps: ``.npy``, ``.npz``, ``.tif``/``.tiff`` and NIfTI.

One reader serves the command line, the Python API and the napari reader.

- Any byte order and dtype: arrays come back in the machine's native byte order (nibabel's
  own sample ``anatomical.nii`` is stored big-endian).
- NIfTI (``.nii``, ``.nii.gz``; needs ``nibabel``, the ``medical`` extra): the array order
  is an explicit choice, ``axes="ijk"`` (the default: the file's own order as nibabel
  returns it, which is what MONAI's ``LoadImage`` gives a model) or ``axes="kji"`` (the
  order of SimpleITK's ``GetArrayFromImage`` and nnU-Net). A fourth (time or channel)
  axis comes first, as a channel axis. Maps are written back in the file's own order with
  its affine, so that they overlay the source in any viewer.
- RGB and RGBA TIFFs (samples as the last axis) are read as channels ``(3, H, W)``; the
  alpha channel is dropped.
- PNG and JPEG pictures are read (not written: maps are floats) as
  :mod:`~maskscope._pictures` says: rows first, colour as channels, palette indices as labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._declared import check_declared, check_npy, check_npy_members, read_limit
from ._pictures import PICTURE_FORMATS, read_picture

__all__ = [
    "AXES",
    "FORMATS",
    "PICTURE_FORMATS",
    "READ_FORMATS",
    "Volume",
    "check_axes",
    "check_colour",
    "check_same_space",
    "native",
    "nifti_image",
    "nifti_order",
    "read_companion",
    "read_image",
    "reorder",
    "write_map",
]

#: File suffixes read and written (maps are written in these).
FORMATS = (".npy", ".npz", ".tif", ".tiff", ".nii", ".nii.gz")

#: File suffixes read: :data:`FORMATS` and pictures (PNG, JPEG).
READ_FORMATS = (*FORMATS, *PICTURE_FORMATS)

#: NIfTI array orders: nibabel/MONAI ``(i, j, k)`` and SimpleITK/nnU-Net ``(k, j, i)``.
AXES = ("ijk", "kji")

_NIFTI = (".nii", ".nii.gz")


@dataclass
class Volume:
    """An array read from a file, with what is needed to write results alike.

    Attributes
    ----------
    data
        The array, native byte order (NIfTI: in the order given by ``axes``, a 4th axis
        first; RGB TIFF: colour channels first).
    voxel_spacing
        Physical voxel size per spatial axis of ``data`` (None when the file has none).
    format
        The file's suffix (one of :data:`FORMATS`).
    meta
        Format-specific information: for NIfTI ``"affine"``, ``"header"`` and ``"axes"``;
        for an RGB TIFF ``"channels": "rgb"``.
    """

    data: np.ndarray
    voxel_spacing: tuple[float, ...] | None
    format: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def axes(self) -> str | None:
        """The NIfTI array order (``"ijk"`` or ``"kji"``), None for other formats."""
        return self.meta.get("axes")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return path.suffix.lower()


def _check_format(path: Path, formats: tuple[str, ...] = READ_FORMATS) -> str:
    fmt = _suffix(path)
    if fmt in PICTURE_FORMATS and formats is FORMATS:
        raise ValueError(
            f"{path.name}: a map holds floats, which a {fmt} picture cannot; expected one of "
            f"{', '.join(FORMATS)} (a figure of the map: figure_png, or --png)"
        )
    if fmt not in formats:
        raise ValueError(
            f"{path.name}: unsupported file type {fmt or '(none)'}; expected one of "
            f"{', '.join(formats)}"
        )
    return fmt


def check_axes(axes: str) -> str:
    """Return ``axes`` if it is one of :data:`AXES`, else raise ``ValueError``."""
    if axes not in AXES:
        raise ValueError(
            f"axes must be one of {', '.join(map(repr, AXES))} "
            f"(nibabel/MONAI or SimpleITK/nnU-Net order), got {axes!r}"
        )
    return axes


def _nibabel():
    try:
        import nibabel
    except ImportError:
        raise ValueError("NIfTI files need nibabel: pip install 'maskscope[medical]'") from None
    return nibabel


def native(array: np.ndarray) -> np.ndarray:
    """The array in the machine's native byte order (a copy only when it was not)."""
    arr = np.asarray(array)
    if not arr.dtype.isnative:
        return arr.astype(arr.dtype.newbyteorder("="))
    return arr


def reorder(data: np.ndarray, src: str, dst: str, n_spatial: int = 3) -> np.ndarray:
    """Reverse the last ``n_spatial`` axes when going between ``"ijk"`` and ``"kji"``.

    Leading (channel) axes stay where they are. Returns a view.
    """
    check_axes(src)
    check_axes(dst)
    arr = np.asarray(data)
    if src == dst:
        return arr
    lead = arr.ndim - n_spatial
    return np.transpose(arr, (*range(lead), *reversed(range(lead, arr.ndim))))


def nifti_order(ndim: int, axes: str) -> tuple[int, ...]:
    """The transpose taking a NIfTI array on disk to the array :func:`read_image` returns.

    Spatial axes (the first three, or two) in ``axes`` order, extra axes (time, vector
    components) first, the last extra axis outermost.
    """
    n_spatial = min(ndim, 3)
    spatial = tuple(range(n_spatial))
    if axes == "kji":
        spatial = spatial[::-1]
    extra = tuple(range(ndim - 1, n_spatial - 1, -1))
    return (*extra, *spatial)


def _read_nifti(path: Path, fmt: str, axes: str) -> Volume:
    nib = _nibabel()
    img = nib.load(str(path))  # the header only: the data is read below
    shape, dtype = img.header.get_data_shape(), img.header.get_data_dtype()
    slope, inter = (getattr(img.dataobj, k, None) for k in ("slope", "inter"))
    scaled = slope is not None and (float(slope), float(inter or 0.0)) != (1.0, 0.0)
    in_memory = np.float64 if scaled else dtype  # nibabel scales into float64
    size = path.stat().st_size
    if fmt == ".nii":
        offset = int(getattr(img.dataobj, "offset", 0))  # where the data starts
        check_declared(path.name, shape, dtype, stored=size - offset)
    else:
        check_declared(path.name, shape, dtype, compressed=size)
    if scaled:  # what reading it takes
        check_declared(path.name, shape, in_memory)
    data = native(np.asarray(img.dataobj))
    n_spatial = min(data.ndim, 3)
    zooms = [float(z) for z in img.header.get_zooms()[:n_spatial]]
    zooms = [z if z > 0 else 1.0 for z in zooms]
    data = np.transpose(data, nifti_order(data.ndim, axes))
    spacing = tuple(reversed(zooms)) if axes == "kji" else tuple(zooms)
    meta = {"affine": np.asarray(img.affine, dtype=float), "header": img.header, "axes": axes}
    return Volume(data, spacing, fmt, meta)


def _read_tiff(path: Path, fmt: str) -> Volume:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        check_declared(path.name, tuple(series.shape), series.dtype)
        data = native(series.asarray())
        layout = str(series.axes)
        spacing = _tiff_spacing(tif, layout)
    if layout.endswith("S") and data.ndim >= 3 and data.shape[-1] in (3, 4):
        if data.ndim > 3:
            raise ValueError(
                f"{path.name}: an RGB stack of shape {data.shape} ({layout}) is not supported; "
                "expected one RGB image (H, W, 3) or a grayscale stack"
            )
        rgb = np.moveaxis(data[..., :3], -1, 0)
        return Volume(np.ascontiguousarray(rgb), None, fmt, {"channels": "rgb"})
    return Volume(data, spacing, fmt)


def check_colour(volume: Volume, sliced: bool, what: str) -> None:
    """Refuse a colour image (an RGB picture or TIFF) that a model would take as 3 slices.

    ``sliced``: whether the model's layout of ``volume.data`` is a 2D model on a volume
    (the model takes fewer channels than the 3 colours). ``what`` names the input.
    """
    if volume.meta.get("channels") == "rgb" and sliced:
        raise ValueError(
            f"{what} is a colour image (3 channels, RGB) and the model takes fewer channels, "
            "so its colours would be explained as 3 slices: convert it to grey first (with "
            "Pillow: Image.open(path).convert('L')), or use a model trained on colour images"
        )


def _tiff_spacing(tif: Any, layout: str) -> tuple[float, ...] | None:
    """The voxel spacing an ImageJ TIFF records (``spacing`` and the X/Y resolution)."""
    meta = tif.imagej_metadata
    if not meta or layout not in ("YX", "ZYX"):
        return None
    try:
        tags = tif.pages[0].tags
        x_num, x_den = tags["XResolution"].value
        y_num, y_den = tags["YResolution"].value
        yx = (float(y_den) / float(y_num), float(x_den) / float(x_num))
        if layout == "YX":
            return yx
        return (float(meta.get("spacing", 1.0)), *yx)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def _read_npz(path: Path, fmt: str, key: str | None) -> Volume:
    check_npy_members(path)
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.files)
        arrays = [k for k in keys if k != "voxel_spacing"]
        if key is None:
            key = "image" if "image" in keys else (arrays[0] if len(arrays) == 1 else None)
        if key is None or key not in keys:
            raise ValueError(f"{path.name}: choose an array among {keys}")
        spacing = tuple(map(float, z["voxel_spacing"])) if "voxel_spacing" in keys else None
        return Volume(native(z[key]), spacing, fmt)


def read_companion(path: str | Path, image: Volume, flag: str, *, axes: str = "ijk") -> Volume:
    """Read a label or mask file that goes with ``image`` (checked to share its space).

    A black-and-white mask file, 0 and 255 only (how binary masks are often saved, as
    PNG and by some tools as TIFF or NIfTI), is read as 0 and 1; ``.npy`` and ``.npz``
    arrays are taken as they are.
    """
    vol = read_image(path, axes=axes)
    check_same_space(vol, image, f"{flag} {Path(path).name}")
    if vol.format in _NIFTI and vol.data.ndim == image.data.ndim + 1 and vol.data.shape[-1] == 1:
        vol = Volume(vol.data[..., 0], vol.voxel_spacing, vol.format, vol.meta)  # (X, Y, 1)
    as_picture = vol.format not in (".npy", ".npz")  # an array is taken as it is
    values = np.unique(vol.data) if as_picture and vol.data.dtype.kind in "iuf" else ()
    if len(values) and values[-1] == 255 and set(values.tolist()) <= {0, 255}:
        vol = Volume((vol.data == 255).astype(np.uint8), vol.voxel_spacing, vol.format, vol.meta)
    return vol


def read_image(path: str | Path, key: str | None = None, *, axes: str = "ijk") -> Volume:
    """Read an image, volume or label file.

    Parameters
    ----------
    path
        A ``.npy``, ``.npz``, ``.tif``/``.tiff``, ``.nii`` or ``.nii.gz`` file, or a
        ``.png``/``.jpg``/``.jpeg`` picture (rows first, colour as channels first).
    key
        For ``.npz``: the array to read (default ``"image"`` when present, else the only
        array, else an error listing the keys).
    axes
        For NIfTI: ``"ijk"`` (nibabel's and MONAI's order, the file's own) or ``"kji"``
        (SimpleITK's and nnU-Net's). Use the order the model was trained on.

    Returns
    -------
    Volume
        The array in native byte order, its voxel spacing and what is needed to write
        maps alike.
    """
    check_axes(axes)
    path = Path(path)
    fmt = _check_format(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    read_limit()  # a bad MASKSCOPE_MAX_READ_GB is not the file's fault
    if fmt in _NIFTI:
        _nibabel()  # a missing extra is not a corrupt file
    try:
        if fmt == ".npy":
            check_npy(path)
            return Volume(native(np.load(path, allow_pickle=False)), None, fmt)
        if fmt == ".npz":
            return _read_npz(path, fmt, key)
        if fmt in (".tif", ".tiff"):
            return _read_tiff(path, fmt)
        if fmt in PICTURE_FORMATS:
            data, meta = read_picture(path)
            return Volume(data, None, fmt, meta)
        return _read_nifti(path, fmt, axes)
    except Exception as exc:  # a corrupt file: one line naming it
        if str(exc).startswith(path.name):  # our own message already names the file
            raise
        raise ValueError(f"{path.name}: cannot read it as {fmt} ({exc})") from None


#: Largest difference (mm, per affine entry) of two NIfTI files taken to share a space.
SPACE_TOLERANCE = 1e-3


def check_same_space(vol: Volume, image: Volume, what: str) -> None:
    """Refuse a NIfTI label or mask file that is not on the NIfTI image's voxel grid.

    The shape alone does not tell: a mask of the same shape in another orientation or
    with another origin (or spacing) marks other voxels. ``what`` names the file in the
    message (e.g. ``"--reference mask.nii.gz"``). Other formats carry no space: nothing
    to check.
    """
    if vol.format not in _NIFTI or image.format not in _NIFTI:
        return
    mine, theirs = _nifti_spatial(vol), _nifti_spatial(image)
    if mine != theirs:
        raise ValueError(
            f"{what} has the spatial shape {mine}, the image {theirs}: it is not on the "
            "image's voxel grid; resample it onto the image first, e.g. "
            "nibabel.processing.resample_from_to(mask, image, order=0)"
        )
    a, b = np.asarray(vol.meta["affine"], float), np.asarray(image.meta["affine"], float)
    diff = float(np.abs(a - b).max())
    if diff > SPACE_TOLERANCE:
        raise ValueError(
            f"{what} is not on the image's voxel grid: its affine differs from the image's by "
            f"up to {diff:.3g} (orientation, spacing or origin); resample it onto the image "
            "first, e.g. nibabel.processing.resample_from_to(mask, image, order=0)"
        )


def _volume_of_metatensor(like: Any, shape: tuple[int, ...]) -> Volume:
    """A MONAI ``MetaTensor`` as the NIfTI volume it stands for: its affine (MONAI keeps it
    in NIfTI's RAS convention), its array order ``(C, i, j, k)``, its ``pixdim``."""
    affine = getattr(like, "affine", None)
    if affine is None or not hasattr(like, "shape"):
        raise TypeError(
            f"like must be a Volume from read_image or a MONAI MetaTensor, got "
            f"{type(like).__name__}"
        )
    a = np.asarray(affine.detach().cpu() if hasattr(affine, "detach") else affine, float)
    if a.shape == (3, 3):  # a 2D image's affine: in the 4×4 of a NIfTI file
        a = np.array([[*a[0, :2], 0, a[0, 2]], [*a[1, :2], 0, a[1, 2]], [0, 0, 1, 0], [0, 0, 0, 1]])
    if a.shape != (4, 4):
        raise ValueError(f"like's affine must be 4×4 (or 3×3 in 2D), got {a.shape}")
    n = min(len(shape), 3)
    spatial = tuple(int(v) for v in tuple(like.shape)[-n:])
    if spatial != tuple(shape[-n:]):
        raise ValueError(
            f"a map written like this MetaTensor must have its spatial shape {spatial}, got a "
            f"map of shape {tuple(shape)}"
        )
    pixdim = getattr(like, "pixdim", None)
    spacing = None if pixdim is None else tuple(float(v) for v in np.asarray(pixdim).ravel())
    data = np.zeros(spatial, np.uint8)  # only the shape is read from a Volume's data
    return Volume(data, spacing, ".nii.gz", {"affine": a, "axes": "ijk"})


def _nifti_spatial(vol: Volume) -> tuple[int, ...]:
    """The spatial sizes of a NIfTI volume as read (its last three axes, extra axes first),
    without trailing axes of one (a 2D slice saved as ``(X, Y, 1)``)."""
    shape = [int(n) for n in vol.data.shape[-3:]]
    while len(shape) > 2 and shape[-1] == 1:
        shape.pop()
    return tuple(shape)


def nifti_image(data: np.ndarray, affine: Any, axes: str = "ijk", header: Any = None):
    """A float32 ``nibabel.Nifti1Image`` of a map given in ``axes`` order (undoes the read).

    Parameters
    ----------
    data
        The map, in the array order it was read in (extra axes first).
    affine
        The source's 4×4 affine (None: identity).
    axes
        The order of ``data``.
    header
        The source's header, copied (its data type set to float32).
    """
    nib = _nibabel()
    check_axes(axes)
    arr = np.asarray(data, dtype=np.float32)
    order = nifti_order(arr.ndim, axes)
    arr = np.transpose(arr, np.argsort(order))
    affine = np.eye(4) if affine is None else np.asarray(affine, dtype=float)
    if header is not None:
        # a NIfTI-2 source's header converted field by field, not copied as NIfTI-1 bytes
        header = nib.Nifti1Header.from_header(header)
        header.set_data_dtype(np.float32)
        # the source's display window (cal_min / cal_max) would hide a map's values:
        # 0 / 0 lets viewers take the map's own range
        header["cal_min"], header["cal_max"] = 0.0, 0.0
    return nib.Nifti1Image(arr, affine, header)


def _spacing_of(arr: np.ndarray, spacing: Any) -> tuple[float, ...] | None:
    """``spacing`` as one positive float per trailing (spatial) axis of ``arr``, or None."""
    if spacing is None or len(tuple(spacing)) == 0:
        return None
    vals = tuple(float(s) for s in spacing)
    if len(vals) > arr.ndim or not all(np.isfinite(v) and v > 0 for v in vals):
        raise ValueError(
            f"spacing must be positive numbers, one per spatial axis of the map of shape "
            f"{arr.shape}, got {vals}"
        )
    return vals


def _write_tiff(path: Path, arr: np.ndarray, spacing: tuple[float, ...] | None) -> None:
    """A float32 TIFF; with a spacing, an ImageJ hyperstack that records it."""
    import tifffile

    if spacing is None or arr.ndim not in (2, 3) or len(spacing) != arr.ndim:
        tifffile.imwrite(path, arr, photometric="minisblack")
        return
    metadata: dict[str, Any] = {"axes": "ZYX" if arr.ndim == 3 else "YX"}
    if arr.ndim == 3:
        metadata["spacing"] = spacing[0]
    y, x = spacing[-2:]
    tifffile.imwrite(path, arr, imagej=True, resolution=(1.0 / x, 1.0 / y), metadata=metadata)


def write_map(
    path: str | Path,
    data: np.ndarray,
    like: Any = None,
    *,
    spacing: Any = None,
) -> Path:
    """Write a map in the format given by ``path``'s suffix.

    For NIfTI the array is turned back to the file's axis order and written with the
    affine and header of ``like`` (when it is a NIfTI volume); with a MONAI ``MetaTensor``
    as ``like`` (``LoadImage``'s output, after any ``Orientation`` or ``Spacing``), with
    its own affine, in its array order, as MONAI's ``SaveImage`` writes it; otherwise an
    ``(i, j, k)`` array with the voxel ``spacing`` on the affine's diagonal (identity
    without one).

    Parameters
    ----------
    path
        ``.npy``, ``.npz``, ``.tif``/``.tiff``, ``.nii`` or ``.nii.gz``.
    data
        The map (spatial axes last).
    like
        The volume the map was made from (its NIfTI space is kept): a :class:`Volume`
        from :func:`read_image`, or the ``MetaTensor`` that was explained.
    spacing
        Voxel spacing per spatial axis, in the array's order: written as ``voxel_spacing``
        in ``.npz``, as the ImageJ spacing and resolution in a 2D or 3D ``.tif``, and on
        the affine of a NIfTI file when ``like`` is not NIfTI. ``.npy`` has no place
        for it. Default: ``like``'s spacing.
    """
    path = Path(path)
    fmt = _check_format(path, FORMATS)
    arr = np.asarray(data, dtype=np.float32)
    if like is not None and not isinstance(like, Volume):
        like = _volume_of_metatensor(like, arr.shape)
    if spacing is None and like is not None and like.voxel_spacing:
        spacing = tuple(like.voxel_spacing)[-arr.ndim :]
    spacing = _spacing_of(arr, spacing)
    if fmt == ".npy":
        np.save(path, arr)
    elif fmt == ".npz":
        extra = {} if spacing is None else {"voxel_spacing": np.asarray(spacing, np.float64)}
        np.savez_compressed(path, map=arr, **extra)
    elif fmt in (".tif", ".tiff"):
        _write_tiff(path, arr, spacing)
    else:
        if like is not None and like.format in _NIFTI:
            n = min(arr.ndim, np.ndim(like.data), 3)
            want, got = tuple(np.shape(like.data)[-n:]), tuple(arr.shape[-n:])
            if want != got:
                raise ValueError(
                    f"a map written like {like.format} source must have its spatial shape "
                    f"{want}, got a map of shape {arr.shape}"
                )
            header = like.meta.get("header")
            img = nifti_image(arr, like.meta["affine"], like.axes or "ijk", header)
        else:
            diagonal = list(spacing[-3:]) if spacing is not None else []
            affine = np.diag([*diagonal, *[1.0] * (4 - len(diagonal))])
            img = nifti_image(arr, affine)
        _nibabel().save(img, str(path))
    return path
