"""Make the README / docs screenshot: the napari dock widget with a saliency overlay.

Needs a display; on a machine without one run it under Xvfb::

    xvfb-run -a -s "-screen 0 1280x1024x24" python scripts/screenshots.py

It opens the 2D shapes sample, docks the maskscope widget from the plugin's manifest,
explains the bundled ``shapes2d`` model with SegRISE, waits for the run to end and saves a
screenshot of the whole window to ``docs/images/napari-widget.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ensure_plugin() -> None:
    """Register the manifest when maskscope runs from a source tree (not installed)."""
    from npe2 import PluginManager, PluginManifest

    import maskscope

    pm = PluginManager.instance()
    pm.discover()
    try:
        pm.get_manifest("maskscope")
    except KeyError:
        pm.register(PluginManifest.from_file(Path(maskscope.__file__).parent / "napari.yaml"))


def main(argv: list[str] | None = None) -> int:
    """Run the demo and write the screenshot; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "napari-widget.png")
    parser.add_argument("--model", default="shapes2d", help="bundled name, file or pkg.mod:factory")
    parser.add_argument("--method", default="SegRISE")
    parser.add_argument("--n-masks", type=int, default=1000)
    parser.add_argument("--size", type=int, nargs=2, default=(1280, 860), metavar=("W", "H"))
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the run")
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtCore import QEventLoop, QTimer

    _ensure_plugin()
    viewer = napari.Viewer(show=True, title="maskscope")
    viewer.window._qt_window.resize(*args.size)
    viewer.open_sample("maskscope", "shapes2d")
    viewer.layers["shapes"].opacity = 0.5  # let the saliency colours show on the shapes
    viewer.layers["shapes label"].contour = 2  # the segmented shape, outlined
    _, widget = viewer.window.add_plugin_dock_widget("maskscope", "Explain segmentation")
    widget.models.select(args.model)
    widget.set_method(args.method)
    if "n_masks" in widget.form.values():  # HDM sweeps a grid of centres instead
        widget.set_values(n_masks=args.n_masks)

    loop = QEventLoop()
    widget.run_finished.connect(lambda *_: loop.quit())
    QTimer.singleShot(int(args.timeout * 1000), loop.quit)
    if widget.run() is None:
        print(f"screenshots: the run did not start: {widget.status.text()}", file=sys.stderr)
        viewer.close()
        return 1
    loop.exec()
    snap = widget.last_snapshot
    if widget.worker is not None or snap is None or not snap.done:
        print(f"screenshots: the run did not finish: {widget.status.text()}", file=sys.stderr)
        widget.cancel()
        viewer.close()
        return 1
    viewer.reset_view()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.window.screenshot(str(args.out), canvas_only=False, flash=False)
    print(f"wrote {args.out} ({widget.status.text()})")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
