"""API parameter names → command-line flags and form fields, in one place."""

from __future__ import annotations

import pytest

from maskscope._engine.failures import ModelError
from maskscope.wording import ModelLoadError, failure_line, for_cli, for_gui, names


@pytest.mark.parametrize(
    ("api", "cli", "gui"),
    [
        (
            "pass spatial_dims=2 or spatial_dims=3",
            "pass --spatial-dims 2 or --spatial-dims 3",
            'pass "model input" = 2D or "model input" = 3D',
        ),
        (
            "set pad_multiple=16 to pad",
            "set --pad-multiple 16 to pad",
            'set "pad multiple" = 16 to pad',
        ),
        ("with output_key='seg'", "with --output-key seg", 'with "output key" = seg'),
        ("set batch_size=1, or", "set --batch-size 1, or", 'set "batch size" = 1, or'),
        (
            "RunOptions.batch_size must be in [1, inf]",
            "--batch-size must be in [1, inf]",
            '"batch size" must be in [1, inf]',
        ),
        (
            "PixelRISE with merge='max' has",
            "PixelRISE with --merge max has",
            'PixelRISE with "merge" = max has',
        ),
        ("unknown=3 and x.y stay", "unknown=3 and x.y stay", "unknown=3 and x.y stay"),
        ("MASKSCOPE_DEBUG=1", "MASKSCOPE_DEBUG=1", "MASKSCOPE_DEBUG=1"),
        (
            "grid (100, 100) is larger than the image",
            "--grid (100, 100) is larger than the image",
            "grid (100, 100) is larger than the image",
        ),
        (
            "target must be a class index in [0, 1]",
            "--target must be a class index in [0, 1]",
            "target must be a class index in [0, 1]",
        ),
        (
            "got slices=[1, 9] for a volume",
            "got --slices 1,9 for a volume",
            'got "scope" = [1, 9] for a volume',
        ),
        (
            "in the units of voxel_spacing, got 100",
            "in the units of --spacing, got 100",
            'in the units of "voxel spacing", got 100',
        ),
        ("or crop=False to run", "or --crop off to run", 'or "crop" = off: the whole image to run'),
        ("the image must be", "the image must be", "the image must be"),
    ],
)
def test_api_names_become_flags_and_fields(api, cli, gui):
    assert for_cli(api) == cli
    assert for_gui(api) == gui


def test_every_method_parameter_has_a_flag_and_a_label():
    table = names()
    for name in ("n_masks", "grid", "p_keep", "merge", "diameter", "seed", "tol", "batch_size"):
        flag, label = table[name]
        assert flag == "--" + name.replace("_", "-") and label


def test_failure_lines():
    assert failure_line(ValueError("bad shape\nmore")) == "bad shape"
    assert failure_line(RuntimeError("boom\nmore")) == (
        "RuntimeError: boom (run with --debug or MASKSCOPE_DEBUG=1 for the traceback)"
    )
    assert failure_line(RuntimeError("boom"), frontend="gui") == "RuntimeError: boom"
    known = ModelError("RuntimeError: x", "set pad_multiple=16", context=" on a batch")
    assert (
        failure_line(known)
        == "the model failed on a batch: RuntimeError: x — set --pad-multiple 16"
    )
    assert failure_line(ModelLoadError("cannot load the model 'm': E: x"), frontend="gui") == (
        "cannot load the model 'm': E: x"
    )
    with pytest.raises(ValueError, match="frontend must be"):
        failure_line(ValueError("x"), frontend="web")
