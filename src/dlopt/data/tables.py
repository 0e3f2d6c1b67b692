"""CSV tables: numeric features and a label column of numbers or class names.

A plain numeric file is parsed in bulk by ``np.loadtxt``'s C reader (called on the bytes); anything it does not take
(quoted fields, class names, a bad field) goes through the precise reader, which accepts the
same files and names the line and column of every problem.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlopt._io import BoundedReader, open_input
from dlopt._validation import did_you_mean
from dlopt.data.dataset import Dataset, make_dataset
from dlopt.errors import DataError

MAX_CSV_BYTES = 1 << 30
TASKS = ("auto", "classification", "regression")


@dataclass(frozen=True)
class CsvTable:
    """A parsed table: `features` (n, width − 1) float64 without the label column, and
    `labels` (n,) float64, or str when the column holds names."""

    header: list[str] | None
    features: np.ndarray
    labels: np.ndarray
    label_column: int


def read_csv(
    path: str | Path, label: str | None = None, *, name: str | None = None, task: str = "auto"
) -> Dataset:
    """A CSV table; the label column is `label` (by header name) or the last column.

    A header row is recognised by a non-numeric feature field in the first row. Labels that
    are names (``setosa``) are classes, kept in sorted order as ``Dataset.class_names``;
    numeric labels follow `task` (``"auto"``: integral labels with few values are classes).
    """
    path = Path(path)
    if task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}; got {task!r}", source=path)
    table = read_csv_table(path, label)
    return table_dataset(table, name=name or path.name, source=str(path), task=task)


def table_dataset(table: CsvTable, *, name: str, source: str, task: str = "auto") -> Dataset:
    labels = table.labels
    if labels.dtype.kind != "U":
        chosen = None if task == "auto" else task
        return make_dataset(table.features, labels, name=name, task=chosen, source=source)  # type: ignore[arg-type]
    if task == "regression":
        raise DataError(
            f"the label column holds names ({labels[0]!r}, …), not numbers; task = "
            '"regression" needs numeric labels',
            source=source,
        )
    names, codes = np.unique(labels, return_inverse=True)
    data = make_dataset(
        table.features,
        codes.astype(np.int64),
        name=name,
        task="classification",
        source=source,
        n_classes=len(names),
    )
    return Dataset(data.X, data.y, data.task, name, data.n_classes, tuple(map(str, names)))


def read_csv_table(
    path: Path, label: str | None = None, *, label_optional: bool = False
) -> CsvTable:
    """Parse `path`; with `label_optional`, a `label` the file does not name means the last
    column (a table to predict may come with or without its header)."""
    with open_input(path, DataError, kind="data file", max_bytes=MAX_CSV_BYTES) as f:
        bulk = _bulk(f)
        if bulk is not None:
            return _table(path, *bulk, label, label_optional)
        f.rewind()  # the precise reader reads the same open file again, whole
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"not UTF-8 text ({exc.reason})", source=path, where=f"@{exc.start}"
        ) from None
    if "\x00" in text:
        raise DataError(
            "contains a NUL byte; not a text table", source=path, where=f"@{text.index(chr(0))}"
        )
    return _precise(path, text, label, label_optional)


_PEEK = 1 << 16  # the first line is read ahead of the bulk parser: longer ones go the precise way


def _bulk(handle: BoundedReader) -> tuple[list[str] | None, np.ndarray] | None:
    """(header, values (rows, width)) of a plain numeric table, parsed by ``np.loadtxt``'s C
    reader straight from the file; None when the precise reader must look at it (which then
    finds the problem, or reads what this does not: quoted fields, names, ``1_000``)."""
    head = handle.peek(_PEEK)
    if head.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark
        handle.read(3)
        head = head[3:]
    end = head.find(b"\n")
    if end < 0 and len(head) >= _PEEK - 3:  # a first line past the read-ahead
        return None
    try:
        first = next(csv.reader([head[: end if end >= 0 else None].decode()]), [])
    except (UnicodeDecodeError, csv.Error):
        return None
    if len(first) < 2:
        return None
    # a header: a word among the features, or a last word above numeric labels (else the
    # first row is data with a class name, and names are not for the bulk parser)
    header = not all(_is_number(f) for f in first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "input contained no data" and the like
        try:
            values = _parse_numbers(handle, int(header))
        except (ValueError, UserWarning):
            return None
    if values.ndim != 2:
        return None
    # one sum finds NaN and inf (they propagate); only an overflowing sum needs the full check
    if not len(values) or values.shape[1] != len(first):
        return None
    if not math.isfinite(values.sum()) and not np.isfinite(values).all():
        return None
    return ([f.strip() for f in first] if header else None), values


def _parse_numbers(handle: BoundedReader, skip: int) -> np.ndarray:
    """``np.loadtxt(handle, delimiter=",", skiprows=skip)`` without its line-by-line
    iteration: numpy's C reader takes a file object in chunks only when it opened the path
    itself, so its reader is called directly on the handle (read in chunks, decoded in C);
    ``np.loadtxt`` itself when this numpy lacks it."""
    try:
        from numpy._core._multiarray_umath import _load_from_filelike
    except ImportError:  # pragma: no cover - numpy < 2 or a changed private API
        _load_from_filelike = None
    if _load_from_filelike is not None:
        try:
            values: np.ndarray = _load_from_filelike(
                handle,
                delimiter=",",
                comment=None,
                quote=None,
                imaginary_unit="j",
                usecols=None,
                skiplines=skip,
                max_rows=-1,
                converters=None,
                dtype=np.dtype(np.float64),
                encoding="latin1",  # bytes beyond ASCII fail here and go to the precise reader
                filelike=True,
                byte_converters=False,
            )
            return values
        except TypeError:  # pragma: no cover - its signature changed
            pass
    body = io.BytesIO(handle.read())
    return np.loadtxt(body, delimiter=",", comments=None, skiprows=skip, ndmin=2)


def _precise(path: Path, text: str, label: str | None, label_optional: bool) -> CsvTable:
    try:
        rows = [(n, row) for n, row in enumerate(csv.reader(io.StringIO(text)), 1) if row]
    except csv.Error as exc:
        raise DataError(f"not a readable CSV table ({exc})", source=path) from None
    if not rows:
        raise DataError("empty: no rows", source=path)
    header: list[str] | None = None
    first = rows[0][1]
    if not all(_is_number(f) for f in first[:-1]) or (
        not _is_number(first[-1]) and len(rows) > 1 and _is_number(rows[1][1][-1])
    ):
        header = [field.strip() for field in first]
        rows = rows[1:]
    if not rows:
        raise DataError("has a header but no data rows", source=path)
    width = len(header) if header is not None else len(rows[0][1])
    column = _label_column(path, header, width, label, label_optional)
    values = np.empty((len(rows), width), dtype=np.float64)
    names: list[str] = []
    for i, (line, row) in enumerate(rows):
        if len(row) != width:
            raise DataError(
                f"{len(row)} fields where {width} were expected", source=path, where=f":{line}"
            )
        for j, field in enumerate(row):
            if j == column:
                names.append(field.strip())
                continue
            try:
                values[i, j] = float(field)
            except ValueError:
                raise DataError(
                    f"not a number: {field[:40]!r}", source=path, where=f":{line}:{j + 1}"
                ) from None
    numeric = all(_is_number(n) for n in names)
    values[:, column] = [float(n) for n in names] if numeric else 0.0  # names: kept apart
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError("NaN or inf value", source=path, where=f":{rows[i][0]}:{j + 1}")
    labels = values[:, column] if numeric else np.array(names, dtype=str)
    if not numeric and any(not n for n in names):
        i = names.index("")
        raise DataError("empty label", source=path, where=f":{rows[i][0]}:{column + 1}")
    return CsvTable(header, np.delete(values, column, axis=1), labels, column)


def _table(
    path: Path,
    header: list[str] | None,
    values: np.ndarray,
    label: str | None,
    label_optional: bool,
) -> CsvTable:
    column = _label_column(path, header, values.shape[1], label, label_optional)
    # the usual last label column: features are a view (no copy of the table)
    features = values[:, :-1] if column == values.shape[1] - 1 else np.delete(values, column, 1)
    return CsvTable(header, features, values[:, column].copy(), column)


def _label_column(
    path: Path, header: list[str] | None, width: int, label: str | None, label_optional: bool
) -> int:
    if width < 2:
        raise DataError(
            f"needs at least 2 columns (features and a label); found {width}", source=path
        )
    if label is None or (label_optional and (header is None or label not in header)):
        return width - 1
    if header is None:
        raise DataError(f"--label {label!r} given but the file has no header row", source=path)
    if label not in header:
        raise DataError(
            f"no column named {label!r}; columns: {', '.join(header)}."
            + did_you_mean(label, header),
            source=path,
        )
    return header.index(label)


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True
