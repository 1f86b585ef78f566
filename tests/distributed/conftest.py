"""One real Dask cluster of two worker processes for the batch tests of this folder."""

from __future__ import annotations

import os

import pytest

import distributed
from tests.distributed.models import LOG_VAR


@pytest.fixture(scope="session")
def load_log(tmp_path_factory):
    """The file where the test models log their loads (set before the workers start)."""
    path = tmp_path_factory.mktemp("loads") / "loads.log"
    old = os.environ.get(LOG_VAR)
    os.environ[LOG_VAR] = str(path)
    yield path
    if old is None:
        os.environ.pop(LOG_VAR, None)
    else:
        os.environ[LOG_VAR] = old


@pytest.fixture(scope="session")
def cluster(load_log):
    """A LocalCluster of 2 worker processes (1 thread each), started once for these tests."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as lc:
        yield lc


@pytest.fixture(scope="session")
def address(cluster) -> str:
    """The cluster's scheduler address."""
    return cluster.scheduler_address
