import io
import pickle
import zipfile

import numpy as np
import pytest

from handwriting.datasets.sketch import load_sketch_npz, read_npz
from handwriting.errors import DataError
from handwriting.strokes import check_offsets


def drawings(rng, n, lengths=(5, 30)):
    out = np.empty(n, dtype=object)
    for i in range(n):
        k = int(rng.integers(*lengths))
        d = rng.integers(-40, 40, size=(k, 3)).astype(np.int16)
        d[:, 2] = (rng.random(k) < 0.2).astype(np.int16)
        d[-1, 2] = 1
        out[i] = d
    return out


@pytest.fixture
def cat(tmp_path, rng):
    data = {"train": drawings(rng, 7), "valid": drawings(rng, 3), "test": drawings(rng, 2)}
    path = tmp_path / "cat.npz"
    np.savez(path, **data)
    return path, data


def test_loads_every_split_in_our_convention(cat):
    path, data = cat
    train = load_sketch_npz(path)
    assert len(train) == 7
    s = train[3]
    raw = data["train"][3].astype(np.float32)
    assert s.offsets.dtype == np.float32 and s.offsets.shape == raw.shape
    np.testing.assert_array_equal(s.offsets[:, 0], raw[:, 0])
    np.testing.assert_array_equal(s.offsets[:, 1], -raw[:, 1])  # y flipped: QuickDraw's y grows down
    np.testing.assert_array_equal(s.offsets[:, 2], raw[:, 2])  # pen_lifted is end_of_stroke
    assert s.text == "cat" and s.source == "cat.npz#train/3"
    for x in train:
        check_offsets(x.offsets)
    every = load_sketch_npz(path, "all")
    assert len(every) == 12 and every[-1].source == "cat.npz#test/1"
    assert len(load_sketch_npz(path, ["valid", "test"], limit=1)) == 2
    scaled = load_sketch_npz(path, "valid", scale=0.5, label="feline")
    assert scaled[0].text == "feline"
    np.testing.assert_allclose(scaled[0].offsets[:, :2], load_sketch_npz(path, "valid")[0].offsets[:, :2] * 0.5)


def test_compressed_and_equal_length_files(tmp_path, rng):
    d = drawings(rng, 3)
    p = tmp_path / "dog.npz"
    np.savez_compressed(p, train=d)
    assert len(load_sketch_npz(p)) == 3
    same = np.stack([np.array([[1, 2, 0], [3, 4, 1]], np.int16)] * 4)  # (4, 2, 3): a plain int array
    p2 = tmp_path / "same.npz"
    np.savez(p2, train=same)
    out = load_sketch_npz(p2)
    assert len(out) == 4 and out[0].offsets[1].tolist() == [3.0, -4.0, 1.0]


def test_last_row_ends_a_stroke(tmp_path):
    d = np.empty(1, dtype=object)
    d[0] = np.array([[1, 1, 0], [2, 2, 0]], np.int16)
    p = tmp_path / "open.npz"
    np.savez(p, train=d)
    assert load_sketch_npz(p)[0].offsets[-1, 2] == 1


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > pwned.txt",))


def _npz_with_member(path, name, payload: bytes):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(name, payload)


def _object_npy(obj) -> bytes:
    """A .npy member whose header says 'object array' followed by an arbitrary pickle."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    pickle.dump(obj, buf, protocol=3)
    return buf.getvalue()


def test_malicious_pickle_is_refused_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "evil.npz"
    _npz_with_member(p, "train.npy", _object_npy(Evil()))
    with pytest.raises(DataError, match="posix.system|os.system|nt.system|refusing"):
        load_sketch_npz(p)
    assert not (tmp_path / "pwned.txt").exists()
    # any other class is refused too, even a harmless one
    _npz_with_member(p, "train.npy", _object_npy([1, 2, 3]))
    with pytest.raises(DataError):
        load_sketch_npz(p)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p.write_bytes(b"not a zip at all"), "not an .npz"),
        (lambda p: np.savez(p, valid=np.empty(0, dtype=object)), "no 'train' array"),
        (lambda p: _npz_with_member(p, "train.npy", b"\x93NUMPY garbage"), "not a valid .npy"),
        (lambda p: _npz_with_member(p, "train.npy", _object_npy(None)[:-3]), "cannot be read|refusing|holds"),
    ],
)
def test_malformed_files(tmp_path, make, match):
    p = tmp_path / "bad.npz"
    make(p)
    with pytest.raises(DataError, match=match):
        load_sketch_npz(p)


def _one(tmp_path, arr):
    d = np.empty(2, dtype=object)
    d[0] = np.array([[1, 1, 1]], np.int16)
    d[1] = arr
    p = tmp_path / "x.npz"
    np.savez(p, train=d)
    return p


@pytest.mark.parametrize(
    "arr, match",
    [
        (np.zeros((4, 5), np.int16), r"drawing 1.*shape \(n, 3\)"),
        (np.zeros((0, 3), np.int16), "drawing 1.*empty"),
        (np.array([[1, 1, 2]], np.int16), "drawing 1: row 0 has pen_lifted=2"),
        (np.array([[1.0, np.nan, 1.0]]), "row 0 is not finite"),
        (np.array(["a", "b", "c"]).reshape(1, 3), "not numeric"),
    ],
)
def test_bad_drawings_name_the_place(tmp_path, arr, match):
    with pytest.raises(DataError, match=match):
        load_sketch_npz(_one(tmp_path, arr))


def test_arguments_and_missing_file(tmp_path, cat):
    path, _ = cat
    with pytest.raises(DataError, match="unknown split"):
        load_sketch_npz(path, "dev")
    with pytest.raises(DataError, match="no such file"):
        load_sketch_npz(tmp_path / "nope.npz")
    with pytest.raises(ValueError):
        load_sketch_npz(path, scale=-1)
    with pytest.raises(ValueError):
        load_sketch_npz(path, limit=-2)
    arrays = read_npz(path, ["valid"])
    assert list(arrays) == ["valid"] and arrays["valid"].dtype == object
