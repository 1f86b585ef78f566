"""Reading 2D pictures (PNG, JPEG) as images and label masks, through Pillow.

They come in the order Pillow, numpy and torchvision give them: rows first, ``(H, W)``,
or colour channels first, ``(3, H, W)``:

- grey (``L``, ``I``, ``I;16``, ``F``) and black-and-white (``1``) pictures: ``(H, W)``;
- colour (``RGB``, ``RGBA``, ``CMYK``, ``YCbCr``, grey with alpha ``LA``): ``(3, H, W)`` in
  RGB, or ``(H, W)`` for ``LA``; alpha is dropped, as for an RGBA TIFF;
- palette pictures (``P``), the usual label masks (VOC, Cityscapes): the palette
  indices, ``(H, W)``, which are the labels.

A picture has no voxel spacing. Maps are floats and are written as ``.npy``, ``.npz``,
``.tif`` or NIfTI, never back into a picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["PICTURE_FORMATS", "read_picture"]

#: Picture suffixes read (not written: a map holds floats).
PICTURE_FORMATS = (".png", ".jpg", ".jpeg")

_GREY = ("L", "I", "I;16", "I;16B", "I;16L", "F", "1", "P")


def read_picture(path: Path) -> tuple[np.ndarray, dict]:
    """``(array, meta)`` of a PNG or JPEG file; ``meta`` says ``"channels": "rgb"`` for colour.

    A multi-frame file (an animated PNG) is refused: one picture per file.
    """
    from PIL import Image

    with Image.open(path) as pic:
        if getattr(pic, "n_frames", 1) > 1:
            raise ValueError(
                f"{path.name}: {pic.n_frames} frames; expected one picture per file "
                "(save a stack as a .tif)"
            )
        mode = pic.mode
        if mode == "LA":
            pic = pic.convert("L")
        elif mode not in (*_GREY, "RGB"):
            pic = pic.convert("RGB")
        data = np.array(pic)
    if data.ndim == 3:
        return np.ascontiguousarray(np.moveaxis(data, -1, 0)), {"channels": "rgb"}
    return data, {}
