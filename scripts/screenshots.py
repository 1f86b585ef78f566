"""Make the README / docs screenshot: the napari dock widget with a saliency overlay.

Needs a display; on a machine without one run it under Xvfb::

    xvfb-run -a -s "-screen 0 1280x1024x24" python scripts/screenshots.py

It opens the 2D shapes sample, docks the maskscope widget from the plugin's manifest,
explains the bundled ``shapes2d`` model with SegRISE, waits for the run to end and saves a
screenshot of the whole window to ``docs/images/napari-widget.png``.
"""

from __future__ import annotations

from pathlib import Path

from napari_shot import run_to_end, save, shot_parser


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
    parser = shot_parser(__doc__, "napari-widget.png", 1000, (1280, 860))
    parser.add_argument("--model", default="shapes2d", help="bundled name, file or pkg.mod:factory")
    parser.add_argument("--method", default="SegRISE")
    args = parser.parse_args(argv)

    import napari

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

    if run_to_end(widget, viewer, args.timeout, "screenshots") is None:
        return 1
    viewer.reset_view()
    save(viewer, args.out)
    print(f"wrote {args.out} ({widget.status.text()})")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
