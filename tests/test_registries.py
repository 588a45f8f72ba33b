"""Benchmarks and models are discovered from their folders and named by their data.

Every registered benchmark builds a tiny stream from synthetic arrays (named by them), and every
registered model fits a stream's input shape: a new file in data/benchmarks/ or models/ gets these
checks by registering alone.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from conftest import idx_folder, tiny_arrays

import lifelong as ll
from lifelong.cli import main
from lifelong.data import Stream
from lifelong.registry import BENCHMARKS, MODELS

TOY_NAMES = ("north", "east", "south", "west")


def options_of(name: str) -> set[str]:
    return set(inspect.signature(BENCHMARKS.get(name)).parameters)


@pytest.mark.parametrize("name", BENCHMARKS.names())
def test_every_benchmark_builds_a_stream_named_by_its_data(name):
    if "arrays" not in options_of(name):
        pytest.skip(f"{name} takes no arrays")
    sized = {"classes_per_task": 2} if "classes_per_task" in options_of(name) else {}  # 4 toy classes
    stream = ll.make_benchmark(name, arrays=tiny_arrays(), dataset="Toy Blobs", class_names=TOY_NAMES,
                               **sized)
    assert isinstance(stream, Stream) and len(stream) >= 1
    assert stream.benchmark == name and "toy-blobs" in stream.name
    assert all(task.x_train.shape[0] > 0 for task in stream)
    if len(stream[0].classes) < stream.num_classes:  # tasks of some classes: named by those classes
        assert stream[0].name == "+".join(TOY_NAMES[c] for c in stream[0].classes)


@pytest.mark.parametrize("model", MODELS.names())
def test_every_model_fits_a_streams_input_shape(model, tiny_task_stream):
    stream = tiny_task_stream
    net = ll.make_model(model, stream.input_shape, stream.num_classes)
    out = net(stream[0].x_test[:5])
    assert out.shape == (5, stream.num_classes) and torch.isfinite(out).all()


def test_the_embedded_digits_keep_their_names():
    split = ll.make_benchmark("split-mnist")
    assert split.name == "split-mnist" and split.benchmark == "split-mnist"
    assert [t.name for t in split] == ["digits01", "digits23", "digits45", "digits67", "digits89"]
    permuted = ll.make_benchmark("permuted-mnist", n_tasks=2, train_per_task=10)
    assert permuted.name == "permuted-mnist" and [t.name for t in permuted] == ["perm0", "perm1"]


def test_a_data_folder_names_its_stream_and_known_data_their_classes(tmp_path):
    folder = idx_folder(tmp_path / "Fashion-MNIST" / "raw", tiny_arrays())
    stream = ll.make_benchmark("split-mnist", source=str(folder))
    assert stream.name == "split-fashion-mnist"
    assert [t.name for t in stream] == ["top+trouser", "pullover+dress"]
    plain = ll.make_benchmark("split-mnist", source=str(idx_folder(tmp_path / "blobs", tiny_arrays())))
    assert plain.name == "split-blobs" and [t.name for t in plain] == ["classes01", "classes23"]
    arrays = ll.make_benchmark("rotated-mnist", angles=[0], arrays=tiny_arrays())
    assert arrays.name == "rotated-arrays" and arrays.benchmark == "rotated-mnist"


def test_run_checks_the_benchmark_that_built_the_stream_not_its_data_name():
    stream = ll.make_benchmark("split-mnist", arrays=tiny_arrays(), dataset="cifar10")
    assert stream.name == "split-cifar10" and stream[0].name == "airplane+automobile"
    train = ll.TrainConfig(optimizer="adam", lr=0.01, batch_size=32, epochs=1, device="cpu")
    config = ll.RunConfig(benchmark="split-mnist", strategy="naive", model_options={"hidden": [8]},
                          train=train)
    assert ll.run(config, stream=stream).task_names == ["airplane+automobile", "bird+cat"]
    with pytest.raises(ll.LifelongError, match="stream given is of benchmark 'split-mnist' but the "
                                               "config names 'rotated-mnist'"):
        ll.run(ll.RunConfig(benchmark="rotated-mnist", strategy="naive"), stream=stream)


def test_a_benchmark_and_a_model_registered_anywhere_are_seen(capsys, tiny_task_stream):
    @BENCHMARKS.register("trial-stream", "a stream registered by a test")
    def trial(scale: float = 1.0) -> Stream:
        return tiny_task_stream

    @MODELS.register("trial-linear", "a model registered by a test")
    def trial_linear(input_shape, num_classes):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(num_classes))

    try:
        assert ll.make_benchmark("trial-stream", scale=2.0).benchmark == "trial-stream"
        with pytest.raises(ll.LifelongError, match="benchmark 'trial-stream' has no option 'colour'"):
            ll.make_benchmark("trial-stream", colour=1)
        assert ll.make_model("trial-linear", (1, 6, 6), 4)(torch.zeros(2, 1, 6, 6)).shape == (2, 4)
        assert main(["list"]) == 0
        listed = capsys.readouterr().out
        assert "trial-stream" in listed and "trial-linear" in listed
    finally:
        BENCHMARKS.unregister("trial-stream")
        MODELS.unregister("trial-linear")
    assert "trial-stream" not in BENCHMARKS and "trial-linear" not in MODELS
