"""Explain a whole dataset: on Dask distributed, or in parts without a cluster, resumably.

- :func:`explain_dataset` (and ``maskscope batch``): every case of a folder, glob or CSV
  gets its map (in the input's format), its saved explanation and a row in a summary
  table; a restart skips the finished cases; a failing case is retried, then recorded.
- :func:`load_cases`: the cases of a dataset, named after their inputs.
- :func:`iter_explain_split` / :func:`explain_split`: one large explanation split across
  workers by ranges of masks, merged to the same bits as one process, streamed.

The Dask engine needs the ``distributed`` extra (``pip install "maskscope[distributed]"``);
``num_parts`` / ``part_id`` need nothing more than maskscope.
"""

from .api import BatchResult, explain_dataset
from .dataset import CSV_COLUMNS, Case, load_cases
from .job import Job, run_case
from .split import explain_split, iter_explain_split
from .store import SUMMARY_COLUMNS, BatchStore

__all__ = [
    "CSV_COLUMNS",
    "SUMMARY_COLUMNS",
    "BatchResult",
    "BatchStore",
    "Case",
    "Job",
    "explain_dataset",
    "explain_split",
    "iter_explain_split",
    "load_cases",
    "run_case",
]
