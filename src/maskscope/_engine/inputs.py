"""Input checks: images, models, references and model outputs.

Every check raises ``TypeError`` or ``ValueError`` naming what was expected and what was
given, so that nothing fails later with an obscure torch error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .outputs import adapt_output

__all__ = [
    "InputLayout",
    "check_output",
    "model_device_dtype",
    "model_layout",
    "normalize_spacing",
    "prepare_image",
    "prepare_reference",
    "resolve_slices",
]

_CONV_NAMES = {
    "Conv2d": 2,
    "Conv3d": 3,
    "ConvTranspose2d": 2,
    "ConvTranspose3d": 3,
    "LazyConv2d": 2,
    "LazyConv3d": 3,
}


def _weight_channels(conv: Any, name: str) -> int | None:
    """Input channels of a convolution from its weight's shape.

    A traced TorchScript module keeps its weights but not attributes such as
    ``in_channels`` or ``groups``; ``groups`` is then read from the traced graph (1
    when it cannot be).
    """
    weight = getattr(conv, "weight", None)
    if isinstance(weight, torch.nn.parameter.UninitializedParameter):  # a lazy convolution
        return None
    if not torch.is_tensor(weight) or weight.ndim < 3:
        return None
    if name.startswith("ConvTranspose"):  # (in, out / groups, *kernel)
        return int(weight.shape[0])
    groups = getattr(conv, "groups", None)
    if isinstance(groups, bool) or not isinstance(groups, int):
        groups = _traced_groups(conv) or 1
    return int(weight.shape[1]) * groups  # (out, in / groups, *kernel)


#: Position of ``groups`` among the inputs of the convolution calls in a traced graph.
_GROUPS_INPUT = {"aten::_convolution": 8, "aten::conv2d": 6, "aten::conv3d": 6}


def _traced_groups(conv: Any) -> int | None:
    """``groups`` of a traced convolution, read from the constant in its graph."""
    try:
        for node in conv.graph.nodes():
            pos = _GROUPS_INPUT.get(node.kind())
            if pos is not None:
                value = list(node.inputs())[pos].toIValue()
                return int(value) if isinstance(value, int) and value > 0 else None
    except Exception:  # no graph, or one of another form: unknown
        return None
    return None


def model_layout(model: Callable) -> tuple[int | None, int | None]:
    """Spatial dimensionality and input channels of a model, from its first convolution.

    Works for ``nn.Module`` and TorchScript modules, and an exported program's module
    (from its graph's recorded input); returns ``(None, None)`` when the model has no
    recognisable convolution or input (plain callables).
    """
    modules = getattr(model, "modules", None)
    if modules is None:
        return None, None
    # a model that declares its input channels knows best (its first convolution may come
    # after a reshaping step such as space-to-depth)
    root_channels = getattr(model, "in_channels", None)
    try:
        for m in modules():  # a module that declares its layout (e.g. the bundled U-Net)
            dims, ch = getattr(m, "spatial_dims", None), getattr(m, "in_channels", None)
            if dims in (2, 3) and isinstance(ch, int) and not isinstance(dims, bool):
                return int(dims), (root_channels if isinstance(root_channels, int) else ch)
        for m in modules():
            name = getattr(m, "original_name", None) or type(m).__name__
            if name in _CONV_NAMES:
                in_ch = root_channels if isinstance(root_channels, int) else None
                in_ch = in_ch or getattr(m, "in_channels", None) or _weight_channels(m, name)
                return _CONV_NAMES[name], (int(in_ch) if in_ch else None)
    except Exception:  # a callable with an unusual modules(): give up on inference
        return None, None
    return _graph_layout(model)


def _graph_layout(model: Callable) -> tuple[int | None, int | None]:
    """Dims and channels from the first input of an exported program's graph (its
    ``(B, C, *spatial)`` example, recorded as ``node.meta["val"]``), or ``(None, None)``."""
    graph = getattr(model, "graph", None)
    try:
        for node in getattr(graph, "nodes", ()):
            if node.op != "placeholder":
                continue
            val = node.meta.get("val")
            shape = getattr(val, "shape", None)
            if shape is None or len(shape) not in (4, 5):
                return None, None
            channels = shape[1]
            return len(shape) - 2, (int(channels) if isinstance(channels, int) else None)
    except Exception:  # an unusual graph: give up on inference
        return None, None
    return None, None


def model_device_dtype(model: Callable) -> tuple[torch.device | None, torch.dtype | None]:
    """Device and floating dtype of a model's first parameter or buffer, if it has any."""
    for getter in ("parameters", "buffers"):
        fn = getattr(model, getter, None)
        if fn is None:
            continue
        try:
            for t in fn():
                if torch.is_tensor(t) and t.is_floating_point():
                    return t.device, t.dtype
        except Exception:
            return None, None
    return None, None


def _as_tensor(image: Any, name: str, *, allow_bool: bool = False) -> torch.Tensor:
    if torch.is_tensor(image):
        # a subclass (MONAI's MetaTensor) as a plain tensor, and a view (a permuted or
        # flipped volume, an Orientation transform's output) laid out in order
        t = image.detach().as_subclass(torch.Tensor)
        if t.device.type == "meta":
            raise ValueError(
                f"{name} is a tensor on the meta device (a shape without values): give a "
                "tensor holding data (on the CPU or a GPU)"
            )
    elif isinstance(image, np.ndarray):
        if image.dtype.kind == "O":
            raise TypeError(f"{name} must hold numbers, got an object array")
        arr = np.ascontiguousarray(image)
        if not arr.dtype.isnative:  # e.g. big-endian NIfTI data: torch takes native only
            arr = arr.astype(arr.dtype.newbyteorder("="))
        t = torch.from_numpy(arr)
    else:
        raise TypeError(
            f"{name} must be a numpy array or a torch tensor, got {type(image).__name__}"
        )
    if (t.dtype == torch.bool and not allow_bool) or t.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty: got an array of shape {tuple(t.shape)}")
    return t.contiguous()


@dataclass(frozen=True)
class InputLayout:
    """How an input array maps onto the model.

    Attributes
    ----------
    image
        The input as ``(C, *spatial)``, float, on the CPU.
    spatial_dims
        The model's spatial dimensionality (2 or 3).
    slice_by_slice
        True when a 2D model explains a 3D volume one ``(H, W)`` slice at a time.
    """

    image: torch.Tensor
    spatial_dims: int
    slice_by_slice: bool

    @property
    def spatial(self) -> tuple[int, ...]:
        """The spatial shape of the whole input (the volume when slice by slice)."""
        return tuple(self.image.shape[1:])


def prepare_image(
    image: Any,
    spatial_dims: int | None,
    in_channels: int | None,
    *,
    declared_channels: int | None = None,
) -> InputLayout:
    """Bring an image to ``(C, *spatial)`` and decide whether to go slice by slice.

    Parameters
    ----------
    image
        ``(H, W)``, ``(C, H, W)``, ``(D, H, W)`` or ``(C, D, H, W)``, numpy or torch.
    spatial_dims
        The model's spatial dimensionality when known (2 or 3).
    in_channels
        The model's input channels when known (declared or read from its first convolution).
    declared_channels
        The input channels the model declares itself (its ``in_channels`` attribute): an
        image with another channel count is refused here, before the model runs. A first
        convolution is only a guess (it may come after a concatenation), so it is not used.
    """
    t = _as_tensor(image, "image")
    if not t.is_floating_point():
        t = t.float()
    if t.ndim not in (2, 3, 4):
        batch = (
            "; a batch of one (a DataLoader's (B, C, *spatial)): give its image, image[0]"
            if t.ndim == 5 and t.shape[0] == 1
            else ""
        )
        raise ValueError(
            "image must be (H, W), (C, H, W), (D, H, W) or (C, D, H, W), "
            f"got an array of shape {tuple(t.shape)}{batch}"
        )
    finite = torch.isfinite(t)
    if not finite.all():
        n_bad = int((~finite).sum())
        raise ValueError(
            f"image contains NaN or infinite values ({n_bad} of {t.numel()} voxels; NaN often "
            "marks voxels outside the field of view after resampling): replace them first, "
            "e.g. with numpy.nan_to_num(image, nan=image_background)"
        )
    if spatial_dims not in (None, 2, 3):
        raise ValueError(f"spatial_dims must be 2, 3 or None, got {spatial_dims!r}")
    shape = tuple(t.shape)
    _check_colours_last(shape, spatial_dims, in_channels)
    _check_channels(shape, spatial_dims, declared_channels)
    if t.ndim == 2:
        if spatial_dims == 3:
            raise ValueError(f"a 3D model needs a (D, H, W) volume, got a 2D image {shape}")
        return InputLayout(t.unsqueeze(0), 2, False)
    if t.ndim == 4:
        return InputLayout(t, spatial_dims or 3, spatial_dims == 2)
    # ndim == 3: (C, H, W) for a 2D model, (D, H, W) for a 3D one, or a volume for a 2D model
    if spatial_dims == 3:
        return InputLayout(t.unsqueeze(0), 3, False)
    if spatial_dims == 2:
        if in_channels is not None and shape[0] != in_channels:
            if in_channels == 1:
                return InputLayout(t.unsqueeze(0), 2, True)
            raise ValueError(
                f"the model takes {in_channels} channels; an image of shape {shape} is "
                f"neither (C={in_channels}, H, W) nor a one-channel (D, H, W) volume"
            )
        return InputLayout(t, 2, False)
    raise ValueError(
        f"cannot tell whether an image of shape {shape} is (C, H, W) for a 2D model or "
        "(D, H, W) for a 3D model: pass spatial_dims=2 or spatial_dims=3"
    )


def _check_colours_last(shape: tuple[int, ...], dims: int | None, in_ch: int | None) -> None:
    """Refuse an (H, W, 3) picture for a 2D model: maskscope takes channels first."""
    if len(shape) == 3 and shape[-1] in (3, 4) and shape[0] > 4 and dims != 3:
        if in_ch not in (None, 1) or dims == 2:
            kind = "RGB" if shape[-1] == 3 else "RGBA"
            raise ValueError(
                f"an image of shape {shape} looks like {kind} with its colours last; "
                f"maskscope takes channels first: give np.moveaxis(image, -1, 0) "
                f"({(shape[-1], *shape[:2])}) for a model taking {shape[-1]} channels, or one "
                "channel (e.g. image.mean(-1)) for a one-channel model"
            )


def declared_channels(model: Any) -> int | None:
    """The input channels ``model`` declares itself (an int ``in_channels`` attribute, as
    MONAI's networks have), or None: only a declared count is refused at the door, not a
    guess from a first convolution."""
    declared = getattr(model, "in_channels", None)
    if isinstance(declared, bool) or not isinstance(declared, int):
        return None
    return declared


def _check_channels(shape: tuple[int, ...], dims: int | None, in_ch: int | None) -> None:
    """Refuse a channel count the model declares it cannot take, before torch does."""
    if in_ch is None:
        return
    got = None
    if len(shape) == 2 and in_ch != 1:
        got = 1  # (H, W): one channel
    elif len(shape) == 4 and shape[0] != in_ch:
        got = shape[0]  # (C, D, H, W)
    elif len(shape) == 3 and dims == 3 and in_ch != 1:
        got = 1  # (D, H, W): one channel
    if got is not None:
        raise ValueError(
            f"the model takes {in_ch} input channel(s), the image has {got}: give an image "
            f"with {in_ch} channel(s) as (C, *spatial), or another model (image shape {shape})"
        )


def resolve_slices(slices: Any, depth: int) -> list[int]:
    """Slice indices for a 2D model on a volume: ``"all"``, an int, or a sequence."""
    if isinstance(slices, str):
        if slices == "all":
            return list(range(depth))
        raise ValueError(f"slices must be 'all', an int or a list of ints, got {slices!r}")
    items = [slices] if isinstance(slices, (int, np.integer)) else list(slices)
    if not items:
        raise ValueError("slices is empty: give at least one slice index")
    out = []
    for s in items:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"slice indices must be ints, got {s!r}")
        if not -depth <= s < depth:
            raise ValueError(f"slice index {s} is out of range for a volume of depth {depth}")
        out.append(int(s) % depth)
    return sorted(set(out))


def spacing_from_image(image: Any, ndim: int) -> tuple[float, ...] | None:
    """The voxel spacing an image carries itself, or None.

    A MONAI ``MetaTensor`` (what ``LoadImage`` gives) has ``pixdim``: the length of each
    array axis's column of its affine, so it follows ``Orientation`` and ``Spacing``
    transforms. It is taken when it has one positive value per spatial axis (``ndim``);
    a tensor of another shape, or a plain array, gives None.
    """
    pixdim = getattr(image, "pixdim", None)
    if pixdim is None:
        return None
    try:
        values = tuple(float(v) for v in np.asarray(pixdim, dtype=float).ravel())
    except (TypeError, ValueError):
        return None
    if len(values) != ndim or not all(np.isfinite(v) and v > 0 for v in values):
        return None
    return values


def normalize_spacing(spacing: Any, ndim: int) -> tuple[float, ...]:
    """Voxel spacing as ``ndim`` positive floats (default 1.0 per axis)."""
    if spacing is None:
        return (1.0,) * ndim
    given = spacing
    try:
        if np.ndim(spacing) == 0:
            spacing = (float(spacing),) * ndim
        vals = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise ValueError(
            f"voxel_spacing must be {ndim} positive numbers (one per spatial axis), got {given!r}"
        ) from None
    if len(vals) != ndim or not all(np.isfinite(v) and v > 0 for v in vals):
        raise ValueError(
            f"voxel_spacing must be {ndim} positive numbers (one per spatial axis), got {spacing!r}"
        )
    return vals


def without_channel_of_one(a: Any, spatial: Sequence[int]) -> Any:
    """``a`` (array or tensor) without a leading axis of one before ``spatial``: a label
    image with a channel axis (MONAI's ``EnsureChannelFirst``, a NIfTI's 4th axis)."""
    spatial = tuple(int(n) for n in spatial)
    if a.ndim == len(spatial) + 1 and a.shape[0] == 1 and tuple(a.shape[1:]) == spatial:
        return a[0]
    return a


def prepare_reference(
    reference: Any, spatial: Sequence[int], n_classes: int | None
) -> torch.Tensor:
    """A reference segmentation as an int64 label image of shape ``spatial``.

    Accepts booleans or integer labels in ``[0, K)`` (``[0, 1]`` for a one-channel model),
    of shape ``spatial`` or ``(1, *spatial)`` (a channel axis of one).
    With ``n_classes=None`` (the model's classes are not known yet) labels must be >= 0;
    the upper bound is checked once the model has run.
    """
    spatial = tuple(spatial)
    t = without_channel_of_one(_as_tensor(reference, "reference", allow_bool=True), spatial)
    if tuple(t.shape) != spatial:
        raise ValueError(
            f"reference must have the image's spatial shape {spatial}, got {tuple(t.shape)}"
        )
    if t.is_floating_point():
        n_bad = int((~torch.isfinite(t)).sum())
        if n_bad:
            raise ValueError(
                f"reference contains NaN or infinite values ({n_bad} voxels): it must hold "
                "integer class labels"
            )
        if not torch.equal(t, t.round()):
            raise ValueError("reference must hold integer class labels, got fractional values")
    t = t.long()
    lo, hi = int(t.min()), int(t.max())
    if n_classes is None:
        if lo < 0:
            raise ValueError(
                f"reference labels must be class indices >= 0, got values in [{lo}, {hi}]"
            )
        return t
    k = max(n_classes, 2)
    if lo < 0 or hi >= k:
        raise ValueError(f"reference labels must be in [0, {k - 1}], got values in [{lo}, {hi}]")
    return t


def check_output(out: Any, batch: int, spatial: Sequence[int], *, expect_k: int | None = None):
    """Check a model output: ``(B, K, *spatial)`` or ``(B, K)``, finite.

    A dict, tuple, list or object with ``.logits`` goes through the default output choice
    first (:func:`maskscope._engine.outputs.adapt_output`). Returns the output as a tensor.
    """
    out = adapt_output(out)
    spatial = tuple(spatial)
    shape = tuple(out.shape)
    seg_ok = out.ndim == 2 + len(spatial) and shape[0] == batch and shape[2:] == spatial
    cls_ok = out.ndim == 2 and shape[0] == batch
    if not (seg_ok or cls_ok):
        expected = (
            f"the model must return (B, K, *spatial) = ({batch}, K, "
            f"{', '.join(map(str, spatial))}) or (B, K) = ({batch}, K) for an input batch of "
            f"{batch}, got {shape}"
        )
        if out.ndim == 2 + len(spatial) and shape[0] == batch:
            raise ValueError(
                f"{expected}: a spatial size of {'×'.join(map(str, shape[2:]))} for an input "
                f"of {'×'.join(map(str, spatial))}; if the network needs sizes divisible by "
                "2**levels, set pad_multiple=16 (the input is padded and the output cropped "
                "back), else resample its output with output=lambda out: ..."
            )
        stacked = out.ndim == 3 + len(spatial) and shape[0] == batch and shape[3:] == spatial
        if stacked:  # (B, heads, K, *spatial)
            raise ValueError(
                f"{expected}: one axis more, as a deep-supervision network in training mode "
                "stacks its heads (MONAI's DynUNet): call model.eval() (the full-resolution "
                "head alone), or choose a head with output=lambda out: out[:, 0]"
            )
        raise ValueError(expected)
    if expect_k is not None and shape[1] != expect_k:
        raise ValueError(
            f"the model returned {shape[1]} channels, but {expect_k} on the unperturbed input"
        )
    if not out.is_floating_point():
        out = out.float()
    # one cheap pass: NaN and ±inf make the sum non-finite (only the exact check names them)
    if not torch.isfinite(out.sum()) and not torch.isfinite(out).all():
        raise ValueError("the model returned NaN or infinite values")
    return out
