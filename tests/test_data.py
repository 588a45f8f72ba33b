"""Sources, transforms and stream builders."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import idx_folder, tiny_arrays, write_idx

from lifelong.data import from_arrays, load_idx_folder, load_mnist5k, make_benchmark, read_idx
from lifelong.data.benchmarks import split
from lifelong.data.streams import Stream, Task
from lifelong.data.transforms import permute, pixel_permutation, rotate
from lifelong.errors import LifelongError

FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_mnist5k_split_is_fixed_and_stratified():
    xtr, ytr, xte, yte = load_mnist5k()
    assert xtr.shape == (4000, 1, 28, 28) and xte.shape == (1000, 1, 28, 28)
    assert xtr.dtype == torch.float32 and 0.0 <= xtr.min() and xtr.max() <= 1.0
    assert torch.bincount(yte).tolist() == [100] * 10
    assert torch.bincount(ytr).tolist() == [400] * 10
    again = load_mnist5k()
    assert torch.equal(again[0], xtr) and torch.equal(again[3], yte)


def test_rotate_by_90_degrees_matches_rot90():
    x = torch.rand(3, 1, 8, 8)
    # counter-clockwise rotation by 90° equals rot90 in the image plane
    assert torch.allclose(rotate(x, 90), torch.rot90(x, 1, dims=(2, 3)), atol=1e-5)
    assert torch.equal(rotate(x, 0), x)


def test_nearest_rotation_only_moves_pixels():
    x = torch.rand(2, 1, 9, 9)
    near, linear = rotate(x, 30, mode="nearest"), rotate(x, 30)
    assert set(near.unique().tolist()) <= set(x.unique().tolist()) | {0.0}  # values kept, not blended
    assert not torch.equal(near, linear)
    assert torch.allclose(rotate(x, 90, mode="nearest"), torch.rot90(x, 1, dims=(2, 3)))


def test_rotation_keeps_centre_mass_and_range():
    xtr = load_mnist5k()[0][:50]
    r = rotate(xtr, 40)
    assert r.shape == xtr.shape and r.min() >= 0 and r.max() <= 1
    # a 40° rotation moves ink but keeps most of it inside the frame
    assert r.sum() / xtr.sum() == pytest.approx(1.0, abs=0.05)


def test_permutation_is_seeded_and_invertible():
    p1, p2 = pixel_permutation(16, 3), pixel_permutation(16, 3)
    assert torch.equal(p1, p2) and sorted(p1.tolist()) == list(range(16))
    x = torch.arange(32.0).reshape(2, 1, 4, 4)
    y = permute(x, p1)
    assert torch.equal(y.reshape(2, -1)[:, torch.argsort(p1)], x.reshape(2, -1))


def test_rotated_stream_homework_defaults():
    s = make_benchmark("rotated-mnist")
    assert [t.name for t in s] == ["rot0", "rot20", "rot40", "rot60", "rot80"]
    assert s.scenario == "domain" and s.num_classes == 10 and s.input_shape == (1, 28, 28)
    assert s.class_mask() is None
    assert torch.equal(s[0].y_train, s[3].y_train)


def test_rotated_subsets_are_seeded():
    a = make_benchmark("rotated-mnist", angles=[0, 9], train_per_task=100, seed=1)
    b = make_benchmark("rotated-mnist", angles=[0, 9], train_per_task=100, seed=1)
    assert a[0].x_train.shape[0] == 100
    assert torch.equal(a[1].x_train, b[1].x_train)
    assert not torch.equal(a[0].y_train, a[1].y_train)  # different draws per task


def test_permuted_stream_tasks_differ():
    s = make_benchmark("permuted-mnist", n_tasks=3, arrays=tiny_arrays())
    assert len(s) == 3 and not torch.equal(s[0].x_train, s[1].x_train)
    assert torch.allclose(s[0].x_train.sum(), s[1].x_train.sum())


def test_split_stream_classes_and_mask():
    s = make_benchmark("split-mnist", classes_per_task=2, arrays=tiny_arrays(), scenario="task")
    assert [t.classes for t in s] == [(0, 1), (2, 3)]
    assert set(s[1].y_train.tolist()) == {2, 3}
    assert s.class_mask().tolist() == [[True, True, False, False], [False, False, True, True]]
    c = make_benchmark("split-mnist", arrays=tiny_arrays(), scenario="class")
    assert c.class_mask() is None


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("split-mnist", {"classes_per_task": 3}, "divide"),
        ("split-mnist", {"scenario": "joint"}, "scenario"),
        ("split-mnist", {"class_order": [0, 1, 2]}, "class_order must list each of the labels"),
        ("split-mnist", {"class_order": [0, 1, 2, 3], "shuffle_order": True}, "not both"),
        ("rotated-mnist", {"angles": []}, "at least one angle"),
        ("rotated-mnist", {"colour": 1}, "has no option .colour.; its options: angles"),
        ("rotated-mnist", {"train_per_task": -5}, "train_per_task must be a positive integer"),
        ("rotated-mnist", {"angles": ["up"]}, "angles must be numbers"),
        ("permuted-mnist", {"n_tasks": 0}, "n_tasks must be a positive integer"),
        ("split-mnist", {"classes_per_task": 0}, "classes_per_task must be a positive integer"),
        ("nope", {}, "unknown benchmark 'nope'; known: permuted-mnist"),
    ],
)
def test_bad_benchmark_options_are_one_line_errors(name, options, message):
    with pytest.raises(LifelongError, match=message) as err:
        make_benchmark(name, arrays=tiny_arrays(), **options)
    assert "\n" not in str(err.value)


def test_from_arrays_scales_8_bit_images_and_keeps_features_as_given():
    pixels = np.full((4, 28, 28), 255, dtype=np.uint8)
    xtr, ytr, _, _ = from_arrays(pixels, [0, 1, 2, 3], pixels, [0, 1, 2, 3])
    assert xtr.shape == (4, 1, 28, 28) and xtr.max() == 1.0 and ytr.dtype == torch.long
    features = np.linspace(-9.5, 7.5, 4 * 64, dtype=np.float32).reshape(4, 64)  # standardised
    xtr, _, xte, _ = from_arrays(features, [0, 1, 2, 3], features[:2] / 10, [0, 1])
    assert xtr.shape == (4, 64) and torch.equal(xtr, torch.from_numpy(features))  # flat, unscaled
    assert torch.allclose(xte, torch.from_numpy(features[:2] / 10))
    labels = [0, 1, 2, 3]
    rows = make_benchmark("rotated-mnist", angles=[0], arrays=(features, labels, features, labels))
    assert rows.input_shape == (1, 8, 8)   # square rows are read as images for rotation
    with pytest.raises(LifelongError, match="rotated-mnist rotates images"):
        make_benchmark("rotated-mnist", arrays=(features[:, :10], labels, features[:, :10], labels))
    with pytest.raises(LifelongError, match="3 labels"):
        from_arrays(pixels, [0, 1, 2], pixels, [0, 1, 2, 3])


def _idx_folder(tmp_path: Path, gz: bool) -> Path:
    rng = np.random.RandomState(0)
    arrays = (rng.randint(0, 256, (20, 28, 28)), np.arange(20) % 10,
              rng.randint(0, 256, (10, 28, 28)), np.arange(10) % 10)
    return idx_folder(tmp_path, arrays, gz)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_roundtrip(tmp_path, gz):
    xtr, ytr, xte, yte = load_idx_folder(_idx_folder(tmp_path, gz))
    assert xtr.shape == (20, 1, 28, 28) and yte.tolist() == list(range(10))
    assert 0 <= xtr.min() and xtr.max() <= 1


def test_corrupt_truncated_and_missing_idx_files(tmp_path):
    folder = _idx_folder(tmp_path, gz=False)
    images = folder / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-10])
    with pytest.raises(LifelongError, match="corrupt"):
        read_idx(images)
    images.write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(LifelongError, match="not an IDX file"):
        load_idx_folder(folder)
    (folder / "t10k-labels-idx1-ubyte").unlink()
    images.unlink()
    with pytest.raises(LifelongError, match="missing train-images-idx3-ubyte"):
        load_idx_folder(folder)
    with pytest.raises(LifelongError, match="does not exist"):
        load_idx_folder(folder / "nowhere")


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(LifelongError, match="cannot read IDX file"):
        read_idx(bad)


@pytest.mark.skipif(not FASHION.is_dir(), reason="needs Debian's dataset-fashion-mnist")
def test_fashion_mnist_from_debian_package():
    xtr, ytr, xte, yte = load_idx_folder(FASHION)
    assert xtr.shape == (60000, 1, 28, 28) and xte.shape == (10000, 1, 28, 28)
    assert torch.bincount(ytr).tolist() == [6000] * 10
    s = make_benchmark("rotated-mnist", source=str(FASHION), angles=[0, 20], train_per_task=500)
    assert len(s) == 2 and s[1].x_train.shape == (500, 1, 28, 28)
    assert s.name == "rotated-fashion-mnist" and s.benchmark == "rotated-mnist"
    assert math.isclose(float(xte.max()), 1.0)


def _raw_idx(path: Path, array, code: int, dtype: str, gz: bool = False) -> Path:
    """Write ``array`` as an IDX file of type ``code`` (big-endian ``dtype``), like the real format."""
    import gzip

    array = np.asarray(array)
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(dtype).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _one_line_error(call, message):
    with pytest.raises(LifelongError, match=message) as err:
        call()
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize(
    "code, dtype", [(0x09, "i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")]
)
def test_every_idx_type_reads_in_native_byte_order(tmp_path, code, dtype):
    values = np.arange(12).reshape(3, 2, 2)
    array = read_idx(_raw_idx(tmp_path / "a-idx3", values, code, dtype))
    assert array.dtype.isnative and array.tolist() == values.tolist()


def test_big_endian_labels_and_float_images_load(tmp_path):
    folder = _idx_folder(tmp_path, gz=False)
    _raw_idx(folder / "train-labels-idx1-ubyte", np.arange(20) % 10, 0x0C, ">i4")
    _raw_idx(folder / "t10k-images-idx3-ubyte", np.full((10, 28, 28), 0.5), 0x0D, ">f4")
    xtr, ytr, xte, yte = load_idx_folder(folder)
    assert ytr.tolist() == [i % 10 for i in range(20)] and float(xte.max()) == 0.5


def test_gzip_corrupt_in_the_middle_is_a_clear_error(tmp_path):
    # a gzip member whose first deflate block (stored) is fine and whose second has an invalid
    # type: gzip raises zlib.error mid-stream, not OSError or EOFError
    payload = bytes([0, 0, 0x08, 1, 0, 0, 0, 200]) + bytes(200)
    stored = b"\x00" + len(payload).to_bytes(2, "little") + (len(payload) ^ 0xFFFF).to_bytes(2, "little")
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + stored + payload + b"\x07" + bytes(8))
    _one_line_error(lambda: read_idx(path), "train-images-idx3-ubyte.gz: the file is corrupt")


def test_overflowing_idx_header_is_corrupt(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in (2**31, 2**31, 4)))
    _one_line_error(lambda: read_idx(path), "is corrupt: 0 data bytes")


@pytest.mark.parametrize("split", ["train", "t10k"])
def test_empty_train_or_test_set_is_refused(tmp_path, split):
    folder = _idx_folder(tmp_path, gz=False)
    write_idx(folder / f"{split}-images-idx3-ubyte", np.zeros((0, 28, 28)))
    write_idx(folder / f"{split}-labels-idx1-ubyte", np.zeros(0))
    name = "train" if split == "train" else "test"
    _one_line_error(lambda: load_idx_folder(folder), f"the {name} set is empty")


def test_mismatched_image_sizes_and_counts_are_refused(tmp_path):
    folder = _idx_folder(tmp_path, gz=False)
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((10, 14, 14)))
    _one_line_error(lambda: load_idx_folder(folder), r"train images have shape \(1, 28, 28\) but test images")
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((9, 28, 28)))
    _one_line_error(lambda: load_idx_folder(folder), "has 9 images but .*t10k-labels.* has 10 labels")


def test_negative_and_unseen_labels_are_refused(tmp_path):
    folder = _idx_folder(tmp_path, gz=False)
    _raw_idx(folder / "train-labels-idx1-ubyte", np.arange(20) % 10 - 1, 0x09, "i1")
    _one_line_error(lambda: load_idx_folder(folder), "train labels must be class numbers .* found -1")
    write_idx(folder / "train-labels-idx1-ubyte", np.arange(20) % 5)  # training sees classes 0..4
    _one_line_error(lambda: load_idx_folder(folder), r"test label 9 is not a training class \(0..4\)")


def test_data_path_that_is_a_file_says_so(tmp_path):
    folder = _idx_folder(tmp_path, gz=False)
    message = _one_line_error(lambda: load_idx_folder(folder / "train-images-idx3-ubyte"),
                              "is a file, not a folder")
    assert "t10k-labels-idx1-ubyte" in message


X, Y = np.random.RandomState(0).rand(6, 784), np.arange(6) % 3


@pytest.mark.parametrize(
    "arrays, message",
    [
        ((X[:, 0], Y, X, Y), r"train images have shape \(6,\); give one row or image per example"),
        ((X, Y + 0.5, X, Y), "train labels must be whole class numbers .* found 0.5"),
        ((X, Y, X, [0, 1, 2, 0, 1, float("nan")]), "test labels must be whole class numbers"),
        ((np.where(X > 0.5, np.nan, X), Y, X, Y), "train images contain NaN"),
        ((X, Y, X[:, :100], Y), "but test images"),
        ((X, Y[:5], X, Y), "6 train inputs but 5 labels"),
        ((X, Y, X, Y - 1), "test labels must be class numbers"),
        ((X, np.array(list("abcdef")), X, Y), "train labels must be a numeric array"),
        ((X[:0], Y[:0], X, Y), "train set is empty"),
        ((torch.tensor(X), torch.tensor(Y + 0.25), X, Y), "whole class numbers"),
    ],
)
def test_bad_user_arrays_are_one_line_errors(arrays, message):
    _one_line_error(lambda: from_arrays(*arrays), message)


def test_benchmark_arrays_must_be_four():
    _one_line_error(lambda: make_benchmark("rotated-mnist", arrays=(X, Y)), "arrays must be a tuple")


def test_from_arrays_accepts_big_endian_and_whole_float_labels():
    xtr, ytr, _, _ = from_arrays(X.astype(">f8"), Y.astype(">f4"), X, Y.astype(np.int8))
    assert ytr.dtype == torch.long and ytr.tolist() == Y.tolist() and xtr.dtype == torch.float32


def test_split_groups_the_labels_present_not_range_of_the_largest():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 4, 4, generator=g)
    y = torch.tensor([3, 7, 8, 9] * 10)
    stream = split(classes_per_task=2, arrays=(x, y, x, y))
    assert [t.name for t in stream] == ["classes37", "classes89"]  # arrays: no digits known
    assert [t.classes for t in stream] == [(3, 7), (8, 9)] and stream.num_classes == 10
    assert all(len(t.y_train) == 20 for t in stream)
    with pytest.raises(LifelongError, match=r"must divide the 4 classes \[3, 7, 8, 9\]"):
        split(classes_per_task=3, arrays=(x, y, x, y))


@pytest.mark.parametrize("change, message", [
    (lambda x, y: (x.numpy(), y), "must be torch tensors"),
    (lambda x, y: ((x * 255).to(torch.uint8), y), "give floats"),
    (lambda x, y: (x, y.int()), "1-D int64"),
    (lambda x, y: (x, y + 5), "not among the task's classes"),
])
def test_a_hand_built_task_is_checked(change, message):
    x, y = torch.rand(6, 1, 2, 2), torch.tensor([0, 1, 0, 1, 0, 1])
    a, b = change(x, y)
    with pytest.raises(LifelongError, match=message):
        Task(0, "t", a, b, x, y, (0, 1))


def test_a_hand_built_stream_is_checked():
    x, y = torch.rand(6, 1, 2, 2), torch.tensor([0, 1, 0, 1, 0, 1])
    t0, t1 = Task(0, "a", x, y, x, y, (0, 1)), Task(1, "b", x, y, x, y, (0, 1))
    with pytest.raises(LifelongError, match="number the tasks 0, 1, 2"):
        Stream("s", [t1, t0], "domain", (1, 2, 2), 2)
    with pytest.raises(LifelongError, match="not the stream's input_shape"):
        Stream("s", [t0, t1], "domain", (4,), 2)
    with pytest.raises(LifelongError, match="outside 0..0"):
        Stream("s", [t0, t1], "domain", (1, 2, 2), 1)
    assert len(Stream("s", [t0, t1], "domain", (1, 2, 2), 2)) == 2


def test_permuted_keeps_flat_features_and_refuses_a_stream_larger_than_memory():
    x, y = torch.rand(20, 10), torch.arange(20) % 2
    stream = make_benchmark("permuted-mnist", n_tasks=2, arrays=(x, y, x, y))
    assert stream.input_shape == (10,)   # flat rows stay flat: permuting needs no image
    with pytest.raises(LifelongError, match="needs about .* GB for the tasks' copies"):
        make_benchmark("permuted-mnist", n_tasks=10**12, arrays=(x, y, x, y))
