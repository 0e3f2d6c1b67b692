"""Readers round-trip valid files and refuse every malformed one with a DataError naming it."""

import gzip
import struct

import numpy as np
import pytest
import torch

from dlopt.data import (
    read_cifar_bin,
    read_csv,
    read_csv_table,
    read_file,
    read_idx,
    read_npy,
    read_npz,
)
from dlopt.errors import DataError


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    return (
        struct.pack(">HBB", 0, code, array.ndim)
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.astype(array.dtype.newbyteorder(">")).tobytes()
    )


def test_csv_with_header_and_named_label(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,target,b\n1,0,2\n3,1,4\n5,2,6.5\n")
    data = read_csv(path, label="target")
    np.testing.assert_array_equal(data.X.numpy(), [[1, 2], [3, 4], [5, 6.5]])
    assert data.y.tolist() == [0, 1, 2] and data.task == "classification"


def test_csv_without_header_takes_the_last_column_and_detects_regression(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("1,0.5\n2,1.25\n3,2.5\n")
    data = read_file(path)
    assert data.task == "regression"
    np.testing.assert_allclose(data.y.numpy(), [0.5, 1.25, 2.5])


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ("", "", "empty"),
        ("a,b\n", "", "no data rows"),
        ("a,b\n1,2\n3\n", ":3", "1 fields where 2"),
        ("a,b\nx,1\n", ":2:1", "not a number"),
        ("a,b\n1,x\n2,\n", ":3:2", "empty label"),
        ("a,b\n1,nan\n", ":2:2", "NaN or inf"),
        ("a,b\n1,inf\n", ":2:2", "NaN or inf"),
        ("a\n1\n", "", "at least 2 columns"),
        ("a,b\n1,-1\n2,3\n", "", "must be >= 0"),
    ],
)
def test_csv_refusals_name_file_and_place(tmp_path, text, where, reason):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=reason) as info:
        read_csv(path)
    assert str(info.value).startswith(f"{path}{where}: ")


def test_csv_label_not_found_suggests(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,label\n1,0\n2,1\n")
    with pytest.raises(DataError, match="Did you mean 'label'"):
        read_csv(path, label="labl")


def test_npy_and_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.integers(0, 4, 20)
    np.save(tmp_path / "a.npy", np.column_stack([X, y]))
    np.savez(tmp_path / "b.npz", X=X, y=y)
    np.savez_compressed(tmp_path / "c.npz", X=X, y=y)
    for data in (
        read_npy(tmp_path / "a.npy"),
        read_npz(tmp_path / "b.npz"),
        read_npz(tmp_path / "c.npz"),
    ):
        np.testing.assert_allclose(data.X.numpy(), X.astype(np.float32))
        assert data.y.tolist() == y.tolist()


def test_npz_refusals(tmp_path):
    cases = {
        "object.npz": dict(X=np.array([object()] * 3, dtype=object), y=np.zeros(3)),
        "nan.npz": dict(X=np.array([[1.0], [np.nan]]), y=np.zeros(2)),
        "len.npz": dict(X=np.zeros((3, 2)), y=np.zeros(2)),
        "noy.npz": dict(X=np.zeros((3, 2))),
    }
    reasons = {
        "object.npz": "Python objects",
        "nan.npz": "NaN",
        "len.npz": "3 feature rows but 2",
        "noy.npz": "no array 'y'",
    }
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(DataError, match=reasons[name]):
            read_npz(tmp_path / name)


def test_npy_header_claiming_huge_size_is_refused_before_allocation(tmp_path):
    path = tmp_path / "huge.npy"
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2147483648, 2), }"
    header += " " * (118 - len(header)) + "\n"
    path.write_bytes(
        b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64
    )
    with pytest.raises(DataError, match="header declares"):
        read_npy(path)


def test_idx_round_trip_plain_and_gzip_with_label_pairing(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (7, 4, 5), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    np.testing.assert_array_equal(read_idx(tmp_path / "train-images-idx3-ubyte"), images)
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"):
        data = read_file(tmp_path / name)
        assert data.X.shape == (7, 1, 4, 5)
        torch.testing.assert_close(data.X[:, 0], torch.from_numpy(images / 255.0).float())
        assert data.y.tolist() == labels.tolist()


def test_idx_refusals(tmp_path):
    images = np.zeros((3, 2, 2), dtype=np.uint8)
    good = idx_bytes(images)
    cases = {
        "magic": (b"\x01\x02" + good[2:], "bad IDX magic"),
        "short": (good[:-1], "declares"),
        "long": (good + b"\0", "declares"),
        "header": (good[:6], "truncated IDX header"),
        "huge": (struct.pack(">HBBI", 0, 8, 1, 2**31), "declares"),
        "tiny": (b"\0\0", "too short"),
    }
    for name, (raw, reason) in cases.items():
        (tmp_path / f"{name}.idx").write_bytes(raw)
        with pytest.raises(DataError, match=reason):
            read_idx(tmp_path / f"{name}.idx")
    (tmp_path / "bomb.idx.gz").write_bytes(
        gzip.compress(struct.pack(">HBBI", 0, 8, 1, 10) + b"\0" * 10**6)
    )
    with pytest.raises(DataError, match="declares"):
        read_idx(tmp_path / "bomb.idx.gz")
    (tmp_path / "notgz.idx.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="gzip"):
        read_idx(tmp_path / "notgz.idx.gz")


def test_idx_images_and_labels_must_pair(tmp_path):
    (tmp_path / "a-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((3, 2, 2), np.uint8)))
    with pytest.raises(DataError, match="labels file"):
        read_file(tmp_path / "a-images-idx3-ubyte")
    (tmp_path / "a-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(2, np.uint8)))
    with pytest.raises(DataError, match="3 images but 2 labels"):
        read_file(tmp_path / "a-images-idx3-ubyte")


def test_cifar_round_trip_and_refusals(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 10, 4, dtype=np.uint8)
    pixels = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
    (tmp_path / "data_batch_1.bin").write_bytes(np.column_stack([labels, pixels]).tobytes())
    data = read_cifar_bin(tmp_path / "data_batch_1.bin")
    assert data.X.shape == (4, 3, 32, 32) and data.y.tolist() == labels.tolist()
    torch.testing.assert_close(data.X.reshape(4, -1), torch.from_numpy(pixels / 255.0).float())
    bad = np.column_stack([labels, pixels])
    bad[2, 0] = 200
    (tmp_path / "label.bin").write_bytes(bad.tobytes())
    with pytest.raises(DataError, match="label 200 out of range") as info:
        read_cifar_bin(tmp_path / "label.bin")
    assert f"@{2 * 3073}" in str(info.value)
    (tmp_path / "size.bin").write_bytes(b"\0" * 3074)
    with pytest.raises(DataError, match="multiple"):
        read_cifar_bin(tmp_path / "size.bin")


def test_unknown_format_and_folders(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match="unknown data format"):
        read_file(tmp_path / "x.parquet")
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(DataError, match="folder"):
        read_file(tmp_path / "d.csv")


@pytest.mark.parametrize(
    ("features", "labels", "what"),
    [
        ([[1.0, 2.0], [3.0, 4.0]], [1e39, 0.5], "labels"),
        ([[1e300, 2.0], [3.0, 4.0]], [0.5, 1.5], "features"),
    ],
)
def test_values_beyond_float32_are_refused_not_turned_into_inf(tmp_path, features, labels, what):
    """float64 files are stored as float32; found by the fuzz test (a cast warning escaped)."""
    path = tmp_path / "big.npy"
    np.save(path, np.column_stack([np.array(features), np.array(labels)]))
    with pytest.raises(DataError, match=f"big.npy.*{what} exceed the float32 range"):
        read_npy(path)


def test_csv_class_names_with_crlf_lines_are_sorted_like_label_encoder(tmp_path):
    from sklearn.preprocessing import LabelEncoder

    path = tmp_path / "names.csv"
    species = ["virginica", "setosa", "versicolor", "setosa"]
    path.write_bytes(
        b"a,b,species\r\n"
        + b"".join(f"{i},{i / 2},{s}\r\n".encode() for i, s in enumerate(species))
    )
    data = read_csv(path, label="species")
    encoder = LabelEncoder().fit(species)
    assert data.class_names == tuple(encoder.classes_)
    assert data.y.tolist() == encoder.transform(species).tolist()
    np.testing.assert_array_equal(data.X.numpy(), [[i, i / 2] for i in range(4)])
    with pytest.raises(DataError, match="not numbers"):
        read_csv(path, label="species", task="regression")


@pytest.mark.parametrize("header", [True, False])
def test_csv_bulk_parse_equals_loadtxt_and_the_precise_reader(tmp_path, header):
    from dlopt.data.tables import _precise

    rng = np.random.default_rng(0)
    values = np.column_stack([rng.standard_normal((500, 6)), rng.integers(0, 3, 500)])
    path = tmp_path / "n.csv"
    np.savetxt(
        path,
        values,
        delimiter=",",
        fmt="%.17g",
        header="a,b,c,d,e,f,y" if header else "",
        comments="",
    )
    table = read_csv_table(path)
    expected = np.loadtxt(path, delimiter=",", skiprows=1 if header else 0)
    np.testing.assert_array_equal(table.features, expected[:, :-1])
    np.testing.assert_array_equal(table.labels, expected[:, -1])
    precise = _precise(path, path.read_text(), None, False)
    np.testing.assert_array_equal(precise.features, table.features)
    assert (table.header is None) == (not header)


def test_csv_a_bad_field_deep_in_a_numeric_file_is_located(tmp_path):
    rows = [f"{i},{i * 0.5},{i % 2}" for i in range(2000)]
    rows[1234] = "1,0x10,1"  # strtod would read hex; float() does not
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="not a number") as info:
        read_csv(path)
    assert str(info.value).startswith(f"{path}:1235:2: ")
    rows[1234] = "1,2"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="2 fields where 3") as info:
        read_csv(path)
    assert str(info.value).startswith(f"{path}:1235: ")


def test_csv_bulk_parse_reads_the_file_in_chunks_through_a_bom_and_a_long_first_line(
    tmp_path, monkeypatch
):
    """The bulk parser reads the open file (not a copy of it): a UTF-8 BOM is skipped, a first
    line longer than the read-ahead goes to the precise reader, and neither changes a value."""
    from dlopt.data import tables

    rng = np.random.default_rng(1)
    values = np.column_stack([rng.standard_normal((3000, 4)), rng.integers(0, 3, 3000)])
    body = "\n".join(",".join(f"{v:.17g}" for v in row) for row in values) + "\n"
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + ("a,b,c,d,y\n" + body).encode())
    precise = tables._precise
    monkeypatch.setattr(tables, "_precise", lambda *a: pytest.fail("took the precise reader"))
    table = read_csv_table(bom)
    assert table.header == ["a", "b", "c", "d", "y"]
    np.testing.assert_array_equal(table.features, values[:, :-1])
    monkeypatch.setattr(tables, "_precise", precise)
    wide = np.arange(3 * 9000, dtype=np.float64).reshape(3, 9000) / 7  # ≈ 170 KB a line
    long = tmp_path / "long.csv"
    np.savetxt(long, wide, delimiter=",", fmt="%.17g")
    table = read_csv_table(long)
    np.testing.assert_array_equal(table.features, wide[:, :-1])
    np.testing.assert_array_equal(table.labels, wide[:, -1])


def test_a_bounded_reader_refuses_the_byte_past_its_limit(tmp_path):
    from dlopt._io import open_input

    path = tmp_path / "grows.csv"
    path.write_bytes(b"0123456789")
    with open_input(path, DataError, kind="data file", max_bytes=10) as handle:
        assert handle.peek(64) == b"0123456789" and handle.read(4) == b"0123"
        assert handle.read() == b"456789"
    path.write_bytes(b"0123456789A")  # larger than the limit: refused before a read
    with (
        pytest.raises(DataError, match="11 bytes; a data file may hold at most 10"),
        open_input(path, DataError, kind="data file", max_bytes=10),
    ):
        pass
    path.write_bytes(b"0123456789")
    with (
        pytest.raises(DataError, match="more than 10 bytes"),
        open_input(path, DataError, kind="data file", max_bytes=10) as handle,
    ):
        with open(path, "ab") as grow:  # grows after the size was checked
            grow.write(b"ABC")
        handle.read()
