"""Hyper-parameter search (SPEC H): spaces with log scales and conditions, and manual, grid,
random, coarse-to-fine and TPE search behind one `search()`, trials kept by Optuna (in memory,
SQLite, PostgreSQL), with pruning and several worker processes on one study; `write_report`
draws a study as HTML with Optuna's plots, `SearchProgress` shows one as it runs."""

from dlopt.search.progress import SearchProgress
from dlopt.search.pruning import PruneTrial
from dlopt.search.report import write_report
from dlopt.search.space import Categorical, Float, Int, Param, Space, grid, sample
from dlopt.search.study import STRATEGIES, SearchResult, search

__all__ = [
    "STRATEGIES",
    "Categorical",
    "Float",
    "Int",
    "Param",
    "PruneTrial",
    "SearchProgress",
    "SearchResult",
    "Space",
    "grid",
    "sample",
    "search",
    "write_report",
]
