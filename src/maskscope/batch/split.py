"""One large explanation split across Dask workers by ranges of masks (or HDM's centres).

Each worker runs a range of the masks with the model its plugin loaded and hands back its
block sums; this process does the unperturbed pass, merges the ranges in mask order as
they arrive and streams the merged snapshots, so napari or a notebook can show a map that
a cluster computes. The final map equals ``method.explain(image, **kwargs)`` in one process
bit for bit, when this process and the workers compute on the same device type (CPU and
CPU, or GPU and GPU).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from ..explanation import Explanation
from .dask_engine import ModelPlugin, connect
from .model_source import ModelSource

__all__ = ["explain_split", "iter_explain_split"]


def _range_task(method, options, image, mask_range, kwargs, plugin_name):
    """One range of masks on a worker, with the model its plugin loaded."""
    from distributed import get_worker

    from ..gui import method_class
    from ..methods._ranges import run_range

    plugin = get_worker().plugins[plugin_name]
    if plugin.error is not None:
        raise RuntimeError(plugin.error)
    explainer = method_class(method)(plugin.model, **options)
    return run_range(explainer, image, mask_range, **kwargs)


def iter_explain_split(
    model: Any,
    image: Any,
    *,
    method: str = "SegRISE",
    scheduler: Any = None,
    n_ranges: int | None = None,
    range_size: int | None = None,
    n_workers: int | None = None,
    device: str = "auto",
    trusted: bool = False,
    method_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Iterator[Explanation]:
    """Explain one image with its masks split across Dask workers; stream merged snapshots.

    Parameters
    ----------
    model
        A model spec (loaded once per worker and once here) or a picklable model object.
    image
        The image or volume, as :meth:`maskscope.Method.explain` takes it.
    method
        ``"RISE"``, ``"SegRISE"``, ``"PixelRISE"`` (``merge="mean"``) or ``"HDM"``.
    scheduler
        None (a new local cluster), an address, or a :class:`distributed.Client`.
    n_ranges, range_size
        How the masks are cut: at most ``n_ranges`` ranges (default: twice the workers), or
        ranges of ``range_size`` masks; both are rounded to whole blocks of 256 masks.
    n_workers, device, trusted
        As for :func:`maskscope.batch.explain_dataset`.
    method_options
        The method's constructor options (``outputs``, ``spatial_dims``, ``output_key``,
        ``pad_multiple``, ``pad_mode``).
    **kwargs
        What :meth:`~maskscope.Method.explain` takes (``n_masks``, ``seed``, ``reference``,
        ``target``, ``voxel_spacing``, ``normalize``, ``batch_size``, ``yield_every``...).

    Returns
    -------
    Iterator[Explanation]
        A snapshot after each range merged in order, the last one with ``done=True``.
    """
    from ..gui import method_class
    from ..methods._ranges import iter_merged, plan_ranges

    options = dict(method_options or {})
    source = ModelSource(model, trusted=trusted, device=device)
    local_model, _ = source.load()
    here = method_class(method)(local_model, **options)
    n_total = here._prepare(image, **kwargs).n_per_task  # checks everything before any work
    remote = {k: v for k, v in kwargs.items() if k not in ("progress", "cancel")}
    with connect(scheduler, n_workers=n_workers, device=device) as (client, gpu, _):
        import distributed

        workers = max(1, len(client.scheduler_info().get("workers", {})))
        ranges = plan_ranges(n_total, n_ranges or 2 * workers, range_size)
        name = f"maskscope-model-{uuid.uuid4().hex[:8]}"
        client.register_plugin(ModelPlugin(source, name), name=name)
        shared = client.scatter(image, broadcast=True)
        futures = [
            client.submit(
                _range_task,
                method,
                options,
                shared,
                r,
                remote,
                name,
                key=f"maskscope-range-{r[0]}-{name}",
                resources={"GPU": 1} if gpu else None,
                priority=len(ranges) - i,  # the first ranges first: the merge goes in order
                pure=False,
            )
            for i, r in enumerate(ranges)
        ]
        try:
            done = (f.result() for f in distributed.as_completed(futures))
            yield from iter_merged(here, image, done, **kwargs)
        finally:
            client.cancel(futures)
            if scheduler is not None:
                client.unregister_worker_plugin(name)


def explain_split(model: Any, image: Any, **kwargs: Any) -> Explanation:
    """Run :func:`iter_explain_split` to the end; return the final explanation."""
    kwargs.setdefault("yield_every", 1e9)  # no intermediate snapshot but the first
    last = None
    for last in iter_explain_split(model, image, **kwargs):  # noqa: B007
        pass
    assert last is not None
    return last
