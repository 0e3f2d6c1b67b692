"""Hyper-parameter search (SPEC H): spaces with log scales and conditions, and manual, grid,
random, coarse-to-fine and TPE search behind one `search()`, trials kept by Optuna (in memory,
SQLite, PostgreSQL), with pruning and several worker processes on one study."""

from dlopt.search.pruning import PruneTrial
from dlopt.search.space import Categorical, Float, Int, Param, Space, grid, sample
from dlopt.search.study import STRATEGIES, SearchResult, search

__all__ = [
    "STRATEGIES",
    "Categorical",
    "Float",
    "Int",
    "Param",
    "PruneTrial",
    "SearchResult",
    "Space",
    "grid",
    "sample",
    "search",
]
