"""CIFAR's binary release, .npz files and image layouts: read exactly, named by the data,
normalised and augmented by default, and refused in one line when damaged or ambiguous."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import cifar_folder, cifar_records

import lifelong as ll
from lifelong.cli import main
from lifelong.config import data_stamp
from lifelong.data import load_dataset
from lifelong.data.cifar import read_cifar_file
from lifelong.errors import LifelongError


def test_a_cifar10_record_is_read_byte_for_byte(tmp_path):
    data, images = cifar_records([7, 2, 9], seed=3)
    path = tmp_path / "test_batch.bin"
    path.write_bytes(data)
    x, y = read_cifar_file(path, "cifar10")
    assert y.tolist() == [7, 2, 9] and x.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(x, images)
    raw = np.frombuffer(data, dtype=np.uint8)
    assert x[0, 1, 0, 5] == raw[1 + 1024 + 5]  # record 0: label byte, red plane, then green row 0
    assert x[1, 2, 31, 31] == raw[3073 + 1 + 3072 - 1]  # record 1's last blue pixel


def test_cifar100_reads_fine_or_coarse_labels(tmp_path):
    data, _ = cifar_records([[3, 17], [19, 99]], heads=2)
    path = tmp_path / "train.bin"
    path.write_bytes(data)
    assert read_cifar_file(path, "cifar100")[1].tolist() == [17, 99]
    assert read_cifar_file(path, "cifar100", "coarse")[1].tolist() == [3, 19]


def test_a_release_folder_or_its_parent_loads_with_the_data_sets_names(tmp_path):
    cifar_folder(tmp_path / "cifar-10-batches-bin", per_class=3)
    data = load_dataset(tmp_path)  # the folder the archive was extracted into
    assert data.name == "cifar10" and data.photos
    assert data.x_train.shape == (30, 3, 32, 32) and data.x_test.shape == (10, 3, 32, 32)
    assert 0 <= float(data.x_train.min()) and float(data.x_train.max()) <= 1
    assert data.class_name(0) == "airplane" and data.class_name(9) == "truck"
    (tmp_path / "cifar-10-batches-bin" / "batches.meta.txt").write_text("\n".join("abcdefghij") + "\n\n")
    assert load_dataset(tmp_path).class_name(1) == "b"  # the release's own names win
    hundred = load_dataset(cifar_folder(tmp_path / "c100", "cifar100"))
    assert hundred.name == "cifar100" and hundred.class_name(99) == "worm" and hundred.y_train.max() == 99
    coarse = load_dataset(tmp_path / "c100", labels="coarse")
    assert coarse.name == "cifar100-coarse" and coarse.y_train.max() == 19
    assert coarse.class_name(14) == "people"


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / "data_batch_3.bin").unlink(), "lacks data_batch_3.bin"),
    (lambda f: (f / "test_batch.bin").write_bytes(b""), "is empty"),
    (lambda f: (f / "data_batch_2.bin").write_bytes((f / "data_batch_2.bin").read_bytes()[:-10]),
     "not a whole number of 3,073-byte records"),
    (lambda f: (f / "test_batch.bin").write_bytes(cifar_records([[1, 2]] * 3, heads=2)[0]),
     "is it CIFAR-100"),
    (lambda f: (f / "data_batch_1.bin").write_bytes(cifar_records([1, 12])[0]),
     "record 1 has label 12, outside 0..9"),
])
def test_damaged_cifar_files_are_refused_in_one_line(tmp_path, damage, message):
    folder = cifar_folder(tmp_path / "cifar")
    damage(folder)
    with pytest.raises(LifelongError, match=message) as info:
        load_dataset(folder)
    assert "\n" not in str(info.value)


def test_the_pickled_python_release_is_refused_with_the_way_out(tmp_path):
    for name in ("data_batch_1", "batches.meta", "test_batch"):
        (tmp_path / "cifar-10-batches-py").mkdir(exist_ok=True)
        (tmp_path / "cifar-10-batches-py" / name).write_bytes(b"\x80\x04not read")
    with pytest.raises(LifelongError, match="pickled.*binary version.*npz"):
        load_dataset(tmp_path)
    for name in ("train", "test", "meta"):
        (tmp_path / "c100").mkdir(exist_ok=True)
        (tmp_path / "c100" / name).write_bytes(b"\x80\x04")
    with pytest.raises(LifelongError, match="pickled"):
        ll.make_benchmark("split-cifar100", source=str(tmp_path / "c100"))


def test_an_npz_file_with_channels_last_images_is_transposed(tmp_path):
    rng = np.random.RandomState(0)
    x = rng.randint(0, 256, (8, 32, 32, 3)).astype(np.uint8)
    y = np.arange(8) % 4
    path = tmp_path / "My Photos.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:4], y_test=y[:4])
    data = load_dataset(path)
    assert data.name == "my-photos" and data.x_train.shape == (8, 3, 32, 32)
    assert float(data.x_train[5, 2, 7, 11]) == pytest.approx(x[5, 7, 11, 2] / 255)
    assert not data.photos  # a user's own images: no normalisation or augmentation unless asked


@pytest.mark.parametrize("write, message", [
    (lambda p: np.savez(p, x_train=np.zeros((2, 4)), y_train=np.zeros(2)), "lacks x_test, y_test"),
    (lambda p: np.savez(p, x_train=np.array([None, 1], dtype=object), y_train=[0, 1], x_test=[[0]],
                        y_test=[0]), "object arrays"),
    (lambda p: p.write_bytes(b"PK\x03\x04 cut short"), "not a readable .npz"),
    (lambda p: np.savez(p, x_train=np.zeros((2, 4)), y_train=[0, 1], x_test=np.zeros((2, 5)), y_test=[0, 1]),
     "same size"),
])
def test_bad_npz_files_are_refused_in_one_line(tmp_path, write, message):
    path = tmp_path / "data.npz"
    write(path)
    with pytest.raises(LifelongError, match=message) as info:
        load_dataset(path)
    assert "\n" not in str(info.value)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(LifelongError, match="not an .npz file"):
        load_dataset(tmp_path / "notes.txt")


@pytest.mark.parametrize("shape, layout, expected", [
    ((2, 32, 32, 3), None, (2, 3, 32, 32)),  # RGB channels last
    ((2, 3, 32, 32), None, (2, 3, 32, 32)),
    ((2, 28, 28, 1), None, (2, 1, 28, 28)),
    ((2, 1, 4, 4), None, (2, 1, 4, 4)),  # both axes could be channels: the square reading wins
    ((2, 5, 9, 9), None, (2, 5, 9, 9)),  # neither: the square reading wins
    ((2, 3, 3, 3), "channels_last", (2, 3, 3, 3)),
    ((2, 4, 6, 3), "channels_first", (2, 4, 6, 3)),
])
def test_image_layouts_follow_the_stated_rule(shape, layout, expected):
    x = torch.rand(shape)
    out = ll.data.from_arrays(x, [0, 1], x, [0, 1], layout=layout)[0]
    assert tuple(out.shape) == expected
    if layout == "channels_last" or shape[-1] in (1, 3) and shape[1] not in (1, 3, 4):
        torch.testing.assert_close(out, x.permute(0, 3, 1, 2))


@pytest.mark.parametrize("shape", [(2, 3, 3, 3), (2, 4, 6, 3), (2, 6, 10, 12)])
def test_an_ambiguous_layout_is_a_question(shape):
    x = torch.rand(shape)
    with pytest.raises(LifelongError, match="channels-first .* or channels-last.*layout="):
        ll.data.from_arrays(x, [0, 1], x, [0, 1])
    with pytest.raises(LifelongError, match="unknown image layout 'nhwc'"):
        ll.data.from_arrays(x, [0, 1], x, [0, 1], layout="nhwc")


def test_split_cifar10_is_named_normalised_and_augmented(tmp_path):
    folder = cifar_folder(tmp_path / "cifar", per_class=4)
    stream = ll.make_benchmark("split-cifar10", source=str(folder), scenario="class")
    assert stream.name == "split-cifar10" and stream.benchmark == "split-cifar10" and stream.augment
    assert [t.name for t in stream] == ["airplane+automobile", "bird+cat", "deer+dog", "frog+horse",
                                        "ship+truck"]
    assert stream.scenario == "class" and stream.input_shape == (3, 32, 32) and stream.num_classes == 10
    x = torch.cat([t.x_train for t in stream])
    torch.testing.assert_close(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-5, rtol=0)
    raw = load_dataset(folder).x_test
    mean, std = (torch.tensor(stream.meta["normalization"][k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    torch.testing.assert_close(stream[0].x_test, ((raw - mean) / std)[:2])  # test: the train's statistics
    plain = ll.make_benchmark("split-cifar10", source=str(folder), normalize=False)
    assert "normalization" not in plain.meta and float(plain[0].x_train.min()) >= 0


def test_split_cifar100_in_ten_or_twenty_tasks(tmp_path):
    folder = cifar_folder(tmp_path / "cifar-100-binary", "cifar100")
    ten = ll.make_benchmark("split-cifar100", source=str(tmp_path))
    assert len(ten) == 10 and ten[0].name == "classes0-9" and ten[9].classes == tuple(range(90, 100))
    twenty = ll.make_benchmark("split-cifar100", source=str(folder), classes_per_task=5, scenario="class")
    assert len(twenty) == 20 and twenty[19].name == "classes95-99" and twenty.num_classes == 100


def test_the_cifar_streams_say_where_the_data_is(tmp_path):
    with pytest.raises(LifelongError, match="none are embedded.*cifar-10-binary.tar.gz.*--data"):
        ll.make_benchmark("split-cifar10")
    with pytest.raises(LifelongError, match="split-cifar10 needs cifar10 but .* holds cifar100"):
        ll.make_benchmark("split-cifar10", source=str(cifar_folder(tmp_path / "c", "cifar100")))
    with pytest.raises(LifelongError, match="holds no MNIST-format IDX files and no CIFAR binary release"):
        ll.make_benchmark("split-mnist", source=str(tmp_path / "c" / ".."))  # only the sub-folder c/
    with pytest.raises(LifelongError, match="does not exist; give a folder .* or an .npz file"):
        ll.make_benchmark("split-mnist", source=str(tmp_path / "nowhere"))


def test_any_stream_over_cifar_is_named_after_it(tmp_path):
    folder = cifar_folder(tmp_path / "cifar")
    split = ll.make_benchmark("split-mnist", source=str(folder))
    assert split.name == "split-cifar10" and split.augment and "normalization" in split.meta
    rotated = ll.make_benchmark("rotated-mnist", source=str(folder), angles=(0, 90))
    assert rotated.name == "rotated-cifar10" and rotated[1].name == "rot90" and rotated.augment
    permuted = ll.make_benchmark("permuted-mnist", source=str(folder), n_tasks=2)
    assert permuted.name == "permuted-cifar10" and not permuted.augment  # shuffled pixels: no crops
    mnist = ll.make_benchmark("split-mnist")
    assert not mnist.augment and "normalization" not in mnist.meta  # digits: as they always were


def test_the_data_stamp_follows_an_npz_files_content(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((2, 4)), y_train=[0, 1], x_test=np.zeros((2, 4)), y_test=[0, 1])
    first = data_stamp(path)
    np.savez(path, x_train=np.ones((3, 4)), y_train=[0, 1, 1], x_test=np.zeros((2, 4)), y_test=[0, 1])
    assert first and data_stamp(path) != first
    nested = cifar_folder(tmp_path / "outer" / "cifar-10-batches-bin")
    before = data_stamp(tmp_path / "outer")
    (nested / "test_batch.bin").write_bytes(cifar_records([1, 2])[0])
    assert data_stamp(tmp_path / "outer") != before  # files one level down count


def test_lifelong_run_on_split_cifar10_from_the_command_line(tmp_path, capsys):
    folder = cifar_folder(tmp_path / "cifar", per_class=2)
    out = tmp_path / "runs"
    rc = main(["run", "--benchmark", "split-cifar10", "--data", str(folder), "--model", "cnn",
               "--epochs", "1", "--mopt", "channels=[4]", "--mopt", "hidden=8", "--out", str(out)])
    assert rc == 0
    (result,) = out.glob("*/result.json")
    saved = json.loads(result.read_text())
    assert len(saved["accuracy_matrix"]) == 5 and saved["extra"]["stream"] == "split-cifar10"
    assert saved["task_names"][0] == "airplane+automobile"
    rc = main(["run", "--benchmark", "split-cifar10", "--out", str(out)])
    assert rc == 2 and "none are embedded" in capsys.readouterr().err


def test_generative_replay_on_a_normalised_stream_says_how_to_turn_it_off():
    x, y = torch.rand(40, 3, 8, 8), torch.arange(40) % 4
    stream = ll.make_benchmark("split-mnist", arrays=(x, y, x, y), normalize=True)
    with pytest.raises(LifelongError, match=r"\[0, 1\].*--bopt normalize=false"):
        ll.make_strategy("generative-replay").setup(stream, ll.preset("homework"))
    ll.make_strategy("generative-replay").setup(ll.make_benchmark("split-mnist", arrays=(x, y, x, y)),
                                                ll.preset("homework"))


def test_lifelong_list_names_the_data_formats_and_their_defaults(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    data = out[out.index("data (--data PATH):"):out.index("presets:")]
    for needed in ("IDX folder", "CIFAR folder", "cifar-10-binary.tar.gz",
                   "pickled Python release is refused",
                   "augmented (crop, flip) by default", "file.npz", "neither normalised nor augmented"):
        assert needed in data
    assert "split-cifar10" in out and "split-cifar100" in out
