"""Episodic-memory methods resume from a checkpoint to identical numbers (memories, buffers and
their seeded generators are part of the saved strategy state)."""

import pytest
from conftest import idx_folder, tiny_arrays, whole_and_resumed

import lifelong as ll


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return idx_folder(tmp_path_factory.mktemp("data"), tiny_arrays())


@pytest.mark.parametrize("strategy, options", [
    ("gem", {"memory_per_task": 8}),
    ("agem", {"memory_per_task": 8, "ref_batch_size": 6}),
    ("replay", {"buffer_size": 20, "replay_batch_size": 5}),
    ("replay", {"buffer_size": 20, "policy": "class-balanced"}),
    ("lwf", {"lam": 0.5}),
])
def test_interrupted_run_resumes_to_identical_numbers(tmp_path, data_dir, strategy, options):
    cfg = ll.RunConfig(
        benchmark="rotated-mnist", strategy=strategy, strategy_options=options,
        benchmark_options={"source": str(data_dir), "angles": [0, 45, 90]},
        model_options={"hidden": [8]},
        train=ll.TrainConfig(optimizer="sgd", lr=0.05, batch_size=20, epochs=1, device="cpu"))
    whole, resumed = whole_and_resumed(cfg, tmp_path)
    assert resumed.accuracy_matrix == whole.accuracy_matrix
    assert resumed.memory_bytes == whole.memory_bytes and whole.memory_bytes[-1] > 0
