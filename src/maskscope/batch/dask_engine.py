"""Running a batch on Dask distributed: a local cluster, or an existing one.

- The default is a :class:`distributed.LocalCluster` of worker processes: one per GPU
  (each with the resource ``GPU=1``), or a few CPU workers that share the cores.
- ``scheduler="tcp://host:port"`` (or a :class:`distributed.Client`) uses a running
  cluster; workers started with ``--resources "GPU=1"`` get the GPU tasks.
- The model is loaded once per worker by :class:`ModelPlugin`, a worker plugin; tasks
  carry only the case and the settings.
- GPU tasks ask for ``resources={"GPU": 1}``: a worker runs one at a time.
- A failing case is retried by Dask (``retries``), then recorded as failed; the rest go on.

Needs the ``distributed`` extra: ``pip install "maskscope[distributed]"``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .dataset import Case
from .job import Job, fails_again, run_case
from .model_source import ModelSource, cpu_threads
from .store import BatchStore

__all__ = ["ModelPlugin", "connect", "run_on_dask"]

_MISSING = (
    "the Dask engine needs dask and distributed: pip install 'maskscope[distributed]' "
    "(or use --num-parts K --part-id I, which needs no cluster)"
)


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ImportError(_MISSING) from None
    return distributed


class CaseFailed(RuntimeError):
    """A case's error, as one picklable line (what the record keeps)."""


def _plugin_base():
    try:
        from distributed import WorkerPlugin
    except ImportError:  # the class stays importable; using it needs distributed
        return object
    return WorkerPlugin


class ModelPlugin(_plugin_base()):  # type: ignore[misc]
    """Loads the batch's model once when a worker starts (or joins later).

    Parameters
    ----------
    source
        The model and where it runs.
    name
        The plugin's name on the workers (tasks find the model by it).
    """

    def __init__(self, source: ModelSource, name: str) -> None:
        self.source = source
        self.name = name
        self.model: Any = None
        self.device = "cpu"
        self.error: str | None = None
        self.worker_name = "?"

    def setup(self, worker: Any) -> None:
        """Load the model; a failure is kept and reported by every task."""
        from ..wording import failure_line

        self.worker_name = str(worker.name)
        index = worker.name if isinstance(worker.name, int) else None
        try:
            self.model, self.device = self.source.load(index)
        except Exception as exc:
            self.error = f"the model did not load on worker {worker.name}: {failure_line(exc)}"

    def teardown(self, worker: Any) -> None:
        """Drop the model (frees its memory on the device)."""
        self.model = None


def _plugin_status(name: str, dask_worker: Any = None) -> str | None:
    plugin = dask_worker.plugins.get(name)
    if plugin is None:
        return "the model plugin is missing"
    return plugin.error


def _case_task(case: Case, job: Job, out: str, plugin_name: str) -> dict[str, Any]:
    """One case on a worker, with the model its plugin loaded.

    An error that would come back (bad input) is recorded here and returned as the
    failed case's row, so that Dask does not retry it; any other raises (and is retried).
    """
    from distributed import get_worker

    from ..wording import failure_line

    worker = get_worker()
    plugin = worker.plugins[plugin_name]
    if plugin.error is not None:
        raise CaseFailed(plugin.error)
    store = BatchStore(out)
    try:
        return run_case(case, job, plugin.model, store, worker=plugin.worker_name)
    except Exception as exc:  # one picklable line, as the record keeps it
        if fails_again(exc):
            return store.failure(case, failure_line(exc), 1, worker=plugin.worker_name)
        raise CaseFailed(failure_line(exc)) from None


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@contextmanager
def connect(
    scheduler: Any = None,
    *,
    n_workers: int | None = None,
    device: str = "auto",
    dashboard: str = ":0",
) -> Iterator[tuple[Any, bool, bool]]:
    """A :class:`distributed.Client`, whether tasks ask for a GPU, and whether it is ours.

    ``scheduler``: None (a new local cluster, closed afterwards), an address, or a Client.
    """
    distributed = _distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler, _cluster_has_gpus(scheduler, device), False
        return
    if scheduler is not None:
        with distributed.Client(scheduler) as client:
            yield client, _cluster_has_gpus(client, device), False
        return
    gpus = _gpu_count() if device in ("auto", "cuda") else 0
    if device == "cuda" and not gpus:
        raise ValueError("--device cuda was asked, but no CUDA GPU is visible here")
    if gpus:
        kw = {"n_workers": n_workers or gpus, "resources": {"GPU": 1}}
    else:
        cores = cpu_threads(1)
        kw = {"n_workers": n_workers or max(1, min(4, cores // 2))}
    with (
        distributed.LocalCluster(
            processes=True,
            threads_per_worker=1,
            dashboard_address=dashboard,
            silence_logs=logging.CRITICAL,  # failed cases are reported in the summary
            **kw,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client, bool(gpus), True


def _cluster_has_gpus(client: Any, device: str) -> bool:
    if device == "cpu":
        return False
    workers = client.scheduler_info().get("workers", {}).values()
    has = any(w.get("resources", {}).get("GPU", 0) >= 1 for w in workers)
    if device.startswith("cuda") and not has:
        print(
            "maskscope: warning: no worker has the resource GPU; start workers with "
            '--resources "GPU=1" so that each runs one GPU task at a time',
            file=sys.stderr,
        )
    return has


def _register(client: Any, source: ModelSource) -> str:
    """Register the model plugin; raise when no worker could load the model."""
    name = f"maskscope-model-{uuid.uuid4().hex[:8]}"
    client.register_plugin(ModelPlugin(source, name), name=name)
    status = client.run(_plugin_status, name)
    errors = [e for e in status.values() if e]
    if status and len(errors) == len(status):
        client.unregister_worker_plugin(name)
        raise ValueError(errors[0])
    return name


def run_on_dask(
    todo: Sequence[Case],
    job: Job,
    store: BatchStore,
    source: ModelSource,
    *,
    scheduler: Any = None,
    n_workers: int | None = None,
    retries: int = 1,
    on_start: Any = None,
) -> Iterator[dict[str, Any]]:
    """Yield each case's record as it finishes (failed cases recorded after the retries)."""
    distributed = _distributed()
    with connect(scheduler, n_workers=n_workers, device=source.device) as (client, gpu, owned):
        workers = client.scheduler_info().get("workers", {})
        if on_start is not None:
            on_start(client.dashboard_link, len(workers))
        if owned and not gpu and source.threads is None:  # our CPU workers share the cores
            source = dataclasses.replace(source, threads=cpu_threads(len(workers) or 1))
        name = _register(client, source)
        resources = {"GPU": 1} if gpu else None
        token = uuid.uuid4().hex[:8]
        futures = {
            client.submit(
                _case_task,
                case,
                job,
                os.fspath(store.out),
                name,
                key=f"maskscope-case-{case.name}-{token}",
                retries=retries,
                resources=resources,
                pure=False,
            ): case
            for case in todo
        }
        try:
            for fut in distributed.as_completed(futures):
                case = futures[fut]
                if fut.status == "finished":
                    yield fut.result()
                else:
                    yield store.failure(case, _message(fut), retries + 1)
                fut.release()
        finally:
            client.cancel(list(futures))
            if scheduler is not None:
                client.unregister_worker_plugin(name)


def _message(future: Any) -> str:
    try:
        exc = future.exception()
    except Exception as err:  # cancelled, or the scheduler lost it
        return f"{type(err).__name__}: {err}"
    if isinstance(exc, CaseFailed):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
