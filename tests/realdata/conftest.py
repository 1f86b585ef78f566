"""The real case, built once per test session in a temporary folder (a few seconds)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("monai", reason="MONAI is in the 'monai' and 'dev' extras")
nib = pytest.importorskip("nibabel", reason="nibabel is the optional 'medical' extra")

from tests.napari.conftest import plugin  # noqa: E402, F401  (the manifest for viewer.open)

from .monai_case import ANATOMICAL, make_label, save_torchscript, train, zscore  # noqa: E402


@dataclass(frozen=True)
class Case:
    """Files of the case and what they hold, in nibabel's (i, j, k) order."""

    folder: Path
    image_path: Path  # big-endian int16 NIfTI
    label_path: Path
    model_path: Path  # TorchScript
    raw: np.ndarray
    label: np.ndarray
    affine: np.ndarray


@pytest.fixture(scope="session")
def case(tmp_path_factory) -> Case:
    folder = tmp_path_factory.mktemp("monai_case")
    src = nib.load(str(ANATOMICAL))
    raw = np.asarray(src.dataobj)
    label = make_label(raw)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = train(zscore(raw), label, steps=60)
        with warnings.catch_warnings():  # tracing warns that it is deprecated, and about ifs
            warnings.simplefilter("ignore")
            save_torchscript(model, folder / "unet.pt", raw.shape)
    finally:
        torch.set_num_threads(threads)
    image_path = folder / "mri.nii"
    header = src.header.copy()  # big-endian, like the source
    nib.save(nib.Nifti1Image(raw.astype(">i2"), src.affine, header), str(image_path))
    label_path = folder / "label.nii.gz"
    nib.save(nib.Nifti1Image(label, src.affine), str(label_path))
    return Case(folder, image_path, label_path, folder / "unet.pt", raw, label, src.affine)
