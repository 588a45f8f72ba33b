"""Sources, transforms and stream builders."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import idx_folder, tiny_arrays

from lifelong.data import from_arrays, load_idx_folder, load_mnist5k, make_benchmark, read_idx
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
        ("split-mnist", {"scenario": "domain"}, "scenario"),
        ("rotated-mnist", {"angles": []}, "at least one angle"),
        ("rotated-mnist", {"colour": 1}, "bad option"),
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


def test_from_arrays_scales_and_reshapes():
    x = np.full((4, 784), 255.0)
    xtr, ytr, _, _ = from_arrays(x, [0, 1, 2, 3], x, [0, 1, 2, 3])
    assert xtr.shape == (4, 1, 28, 28) and xtr.max() == 1.0 and ytr.dtype == torch.long
    with pytest.raises(LifelongError, match="3 labels"):
        from_arrays(x, [0, 1, 2], x, [0, 1, 2, 3])


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
    assert math.isclose(float(xte.max()), 1.0)
