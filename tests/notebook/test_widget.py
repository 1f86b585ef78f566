"""ExplainWidget without a browser: click, wait, and check what was shown and kept."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("ipywidgets")

from PIL import Image

from maskscope.methods import METHODS
from maskscope.notebook import ExplainWidget
from maskscope.notebook._view import render_slice
from tests.conftest import ThresholdNet


class Slow(nn.Module):
    """Sleeps ``delay`` s per forward call; raises after ``fail_after`` calls if asked."""

    def __init__(self, model: nn.Module, delay: float, fail_after: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.delay = delay
        self.fail_after = fail_after
        self.calls = 0
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("CUDA out of memory (simulated)")
        time.sleep(self.delay)
        return self.model(x)


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


@pytest.fixture
def image2d() -> np.ndarray:
    img = np.zeros((48, 48), np.float32)
    img[12:30, 10:34] = 1.0
    return img


@pytest.fixture
def volume() -> np.ndarray:
    vol = np.zeros((12, 24, 32), np.float32)
    vol[3:9, 6:18, 8:24] = 1.0
    return vol


def wait_until(cond, timeout: float = 10.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("condition not reached")
        time.sleep(0.01)


def test_click_run_streams_and_ends_with_the_final_explanation(image2d):
    w = ExplainWidget(ThresholdNet(2), image2d, n_masks=64, batch_size=8, grid=4)
    assert "Ready" in w.status.value and w.explanation is None
    blank = w.last_png
    w.run_button.click()
    expl = w.wait(timeout=30)
    assert w.error is None, w.error
    assert expl is w.explanation and expl.done
    assert expl.method == "SegRISE" and expl.n_done == expl.n_total == 64
    assert expl.params["n_masks"] == 64 and expl.params["grid"] == 4
    assert w.progress.value == 1.0 and w.progress.bar_style == "success"
    assert "done" in w.status.value and "64" in w.status.value
    assert "elapsed" in w.time_label.value
    assert not w.running and not w.run_button.disabled and w.cancel_button.disabled
    # the PNG that was sent is the final map over the image, outlined
    png = decode(w.last_png)
    assert w.last_png != blank
    expected = render_slice(expl.image, expl.map, cmap="inferno", alpha=0.6, contour=expl.reference)
    np.testing.assert_array_equal(png, expected)
    assert png.shape[0] >= 320  # small images are enlarged for display


def test_updates_are_throttled_to_five_per_second(image2d):
    model = Slow(ThresholdNet(2), delay=0.01)
    w = ExplainWidget(model, image2d, n_masks=120, batch_size=1, grid=4)
    sent: list[float] = []
    w.view.widget.observe(lambda _c: sent.append(time.monotonic()), names="value")
    t0 = time.monotonic()
    w.run()
    w.wait(timeout=60)
    duration = time.monotonic() - t0
    run = w._run
    assert w.error is None and w.explanation.done
    # the engine paced its snapshots (120 chunks, a few per second), the display too
    assert 2 <= w.n_updates <= run.n_received <= 5 * duration + 2
    assert np.diff(w.update_times).min() >= 0.19
    assert len(sent) == w.n_updates + 1  # one PNG per update, plus the final one


def test_cancel_stops_at_the_next_chunk_and_keeps_the_partial_map(image2d):
    model = Slow(ThresholdNet(2), delay=0.02)
    w = ExplainWidget(model, image2d, n_masks=5000, batch_size=2, grid=4)
    w.run()
    wait_until(lambda: w.explanation is not None and w.explanation.n_done >= 10)
    assert w.running and w.run_button.disabled and not w.cancel_button.disabled
    w.cancel_button.click()
    expl = w.wait(timeout=10)
    calls_at_end = model.calls
    assert not w.running and w.error is None
    assert not expl.done and 10 <= expl.n_done < 5000
    assert np.abs(expl.map).max() > 0
    assert "cancelled" in w.status.value and "partial map is kept" in w.status.value
    assert w.progress.bar_style == "warning" and 0 < w.progress.value < 1
    time.sleep(0.2)
    assert model.calls == calls_at_end  # nothing runs after the cancel
    assert w.explanation is expl  # kept on the widget
    assert "elapsed" in w.time_label.value and "left" not in w.time_label.value


def test_a_run_that_cannot_start_keeps_the_last_map_and_the_run_in_progress(image2d):
    w = ExplainWidget(ThresholdNet(2), image2d, n_masks=16, batch_size=4)
    done = w.run().wait(timeout=30)
    shown, progress = w.last_png, w.progress.value
    w.set_params(n_masks=-5).run()
    assert "Cannot start" in w.status.value and "n masks" in w.status.value
    assert w.explanation is done and w.progress.value == progress and w.last_png == shown
    # while a run goes, a bad value does not stop it
    model = Slow(ThresholdNet(2), delay=0.02)
    slow = ExplainWidget(model, image2d, n_masks=400, batch_size=2, grid=4)
    slow.run()
    wait_until(lambda: slow.explanation is not None and slow.explanation.n_done >= 4)
    slow.set_params(p_keep=1.5).run()
    assert "Cannot start" in slow.status.value and slow.running
    assert slow.wait(timeout=60).done and slow.explanation.n_done == 400


def test_a_run_that_cannot_start_with_the_axes_reversed_keeps_the_maps_order(volume):
    model = Slow(ThresholdNet(3), delay=0.01)
    w = ExplainWidget(model, volume, n_masks=120, batch_size=2, grid=3)
    w.run()
    wait_until(lambda: w.explanation is not None and w.explanation.n_done >= 4)
    w.axes_dropdown.value = "kji"
    w.target_text.value = "abc"  # refused after the request was built
    w.run()
    assert "Cannot start" in w.status.value and w.running
    done = w.wait(timeout=60)
    assert done.done and done.map.shape == volume.shape and not w.running
    assert "done" in w.status.value and not w.run_button.disabled
    w._redraw()  # the kept map is shown in the image's order


def test_model_error_shows_in_the_status_line_and_is_kept(image2d):
    model = Slow(ThresholdNet(2), delay=0.0, fail_after=4)
    w = ExplainWidget(model, image2d, n_masks=64, batch_size=4)
    w.run()
    w.wait(timeout=10)
    assert isinstance(w.error, RuntimeError)
    assert "out of memory" in w.status.value and "failed" in w.status.value
    assert w.progress.bar_style == "danger"
    assert not w.running and not w.run_button.disabled and w.cancel_button.disabled
    assert w.explanation is not None and not w.explanation.done  # the map until the error
    # the widget still works afterwards
    model.fail_after = None
    w.run()
    assert w.wait(timeout=30).done and w.error is None


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"n_masks": 0}, "n_masks"),
        ({"p_keep": 1.5}, "p_keep"),
        ({"grid": "eight"}, "grid"),
        ({"tol": "small"}, "early-stop"),
    ],
)
def test_bad_values_show_in_the_status_line(image2d, change, match):
    w = ExplainWidget(ThresholdNet(2), image2d)
    w.set_params(**change).run()
    assert w.error is not None and match in str(w.error)
    assert "Cannot start" in w.status.value and not w.running
    assert w.explanation is None


def test_bad_target_and_reference_show_in_the_status_line(image2d):
    w = ExplainWidget(ThresholdNet(2), image2d, n_masks=8)
    w.target_text.value = "background"
    w.run()
    assert isinstance(w.error, ValueError) and "target" in w.status.value
    w.target_text.value = "7"
    w.run().wait(timeout=10)
    assert isinstance(w.error, ValueError) and "target" in w.status.value
    bad_ref = ExplainWidget(ThresholdNet(2), image2d, reference=np.ones((5, 5)), n_masks=8)
    bad_ref.run().wait(timeout=10)
    assert isinstance(bad_ref.error, ValueError) and "reference" in str(bad_ref.error)


def test_construction_errors_are_raised():
    with pytest.raises(TypeError, match="unknown parameter"):
        ExplainWidget(ThresholdNet(2), np.zeros((8, 8)), n_mask=5)
    with pytest.raises(ValueError, match="method must be one of"):
        ExplainWidget(ThresholdNet(2), np.zeros((8, 8)), method="LIME")
    with pytest.raises(ValueError, match="image must be"):
        ExplainWidget(ThresholdNet(2), np.zeros((2, 2, 8, 8, 8)))
    with pytest.raises(ValueError, match="voxel_spacing"):
        ExplainWidget(ThresholdNet(2), np.zeros((8, 8)), voxel_spacing=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="outputs"):
        ExplainWidget(ThresholdNet(2), np.zeros((8, 8)), outputs="softmax")
    with pytest.raises(TypeError, match="callable"):
        ExplainWidget("shapes2d", np.zeros((8, 8)))


def test_rerun_replaces_the_result(image2d):
    w = ExplainWidget(ThresholdNet(2), image2d, n_masks=32, grid=4, method="rise")
    first = w.run().wait(timeout=30)
    second = w.run(seed=3).wait(timeout=30)
    assert first.done and second.done and w.explanation is second
    assert second.params["seed"] == 3 and not np.allclose(first.map, second.map)
    # a run started while one is going cancels it and takes over
    w.set_params(n_masks=100_000, batch_size=1)
    w.run()
    wait_until(lambda: w.explanation is not None)
    w.run(n_masks=16)
    final = w.wait(timeout=30)
    assert final.done and final.n_total == 16 and w.explanation is final


def test_method_dropdown_rebuilds_the_form_and_keeps_shared_values(image2d):
    w = ExplainWidget(ThresholdNet(2), image2d, n_masks=77)
    assert list(w.method_dropdown.options) == list(METHODS)
    assert "score" in w.form.fields
    w.method_dropdown.value = "PixelRISE"
    assert "merge" in w.form.fields and "score" not in w.form.fields
    assert w.form.fields["n_masks"].get() == 77
    w.run(merge="max", n_masks=24)
    expl = w.wait(timeout=30)
    assert expl.method == "PixelRISE" and "mean" in w.view_dropdown.options
    before = w.last_png
    w.view_dropdown.value = "mean"
    assert w.last_png != before


def test_hdm_form_and_views(image2d):
    w = ExplainWidget(ThresholdNet(2), image2d, method="HDM", diameter=12.0, stride=8.0)
    assert {"diameter", "stride"} <= set(w.form.fields)
    expl = w.run().wait(timeout=30)
    assert w.error is None and expl.method == "HDM" and expl.done
    assert {"better_only", "worse_only"} <= set(w.view_dropdown.options)


def test_opacity_and_colormap_controls_redraw(image2d):
    w = ExplainWidget(ThresholdNet(2), image2d, n_masks=16)
    w.run().wait(timeout=30)
    pngs = {w.last_png}
    w.opacity_slider.value = 1.0
    pngs.add(w.last_png)
    w.cmap_dropdown.value = "viridis"
    pngs.add(w.last_png)
    w.outline_checkbox.value = False
    pngs.add(w.last_png)
    assert len(pngs) == 4
    expl = w.explanation
    np.testing.assert_array_equal(
        decode(w.last_png), render_slice(expl.image, expl.map, cmap="viridis", alpha=1.0)
    )


def test_volume_sends_only_the_visible_slice(volume):
    w = ExplainWidget(
        ThresholdNet(3), volume, n_masks=16, batch_size=8, grid=2, voxel_spacing=(2.0, 1.0, 1.0)
    )
    assert w.slicer.slider.layout.display != "none" and w.slicer.slider.max == 11
    expl = w.run().wait(timeout=60)
    assert w.error is None and expl.map.shape == (12, 24, 32)
    z = w.slicer.slider.value
    assert z == round(np.nonzero(expl.reference)[0].mean())  # follows the segment
    axial = w.last_png
    assert decode(axial).shape[:2] == (240, 320)  # one 24 × 32 slice, enlarged ×10
    w.slicer.slider.value = 0
    assert w.last_png != axial
    w.slicer.axis_buttons.value = 2  # sagittal: 12 slices of 2 mm by 24 rows of 1 mm
    assert w.slicer.slider.max == 31
    sagittal = decode(w.last_png)
    assert sagittal.shape[:2] == (24 * 14, 24 * 14)  # 2 mm slices drawn twice as tall
    w.show_slice(5, axis=1)
    assert w.slicer.axis_buttons.value == 1 and w.slicer.slider.value == 5


def test_2d_model_on_a_volume_explains_the_current_slice(volume):
    w = ExplainWidget(ThresholdNet(2), volume, n_masks=16, grid=4)
    assert w.slices_dropdown.layout.display != "none"
    w.show_slice(4)
    expl = w.run().wait(timeout=30)
    assert w.error is None and expl.slices == (4,)
    assert np.abs(expl.map[4]).max() > 0 and not expl.map[0].any()


def test_512_image_stays_responsive():
    img = np.zeros((512, 512), np.float32)
    img[100:300, 150:400] = 1.0
    w = ExplainWidget(Slow(ThresholdNet(2), delay=0.02), img, n_masks=48, batch_size=2, grid=4)
    w.run()
    wait_until(lambda: w.n_updates >= 1, timeout=20)
    t0 = time.monotonic()
    w.opacity_slider.value = 0.3  # the kernel thread redraws while the run goes on
    assert time.monotonic() - t0 < 1.0
    w.wait(timeout=60)
    assert w.error is None and decode(w.last_png).shape == (512, 512, 3)
    assert w.n_updates <= 5 * w.explanation.elapsed + 1
