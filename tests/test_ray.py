"""`--executor ray`: each run a Ray task on a local instance; same numbers, same report folder."""

import io

import pytest
from conftest import idx_folder, tiny_arrays
from test_compare import numbers, tiny

from lifelong.compare import compare
from lifelong.progress import ComparisonProgress
from lifelong.report import collect

ray = pytest.importorskip("ray", reason="Ray not installed (pip install 'lifelong[ray]')")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return idx_folder(tmp_path_factory.mktemp("data"), tiny_arrays())


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_executor_matches_the_local_executor(local_ray, tmp_path, data_dir):
    c = tiny(data_dir)
    log = io.StringIO()
    on_ray = compare(c, tmp_path / "ray", executor="ray", display=ComparisonProgress(log))
    local = compare(c, tmp_path / "local", report=False)
    assert numbers(on_ray) == numbers(local)
    assert "[2/2 runs]" in log.getvalue()
    # the results came back into the report folder: the report lists both methods
    assert sorted(collect(tmp_path / "ray")["rotated-mnist"]) == ["joint", "naive (baseline)"]
    assert (tmp_path / "ray" / "report.html").exists()
    for run in c.plan():
        assert (tmp_path / "ray" / "runs" / run.config.run_id() / "result.json").exists()



def test_ray_tunes_as_the_local_executor_does(local_ray, tmp_path, data_dir):
    import lifelong as ll

    tuning = {"strategy": "ewc", "benchmark_options": {"source": str(data_dir), "angles": [0, 45]},
              "model_options": {"hidden": [16]}, "grid": {"lam": [1.0, 100.0]},
              "train": {"epochs": 1, "lr": 0.01, "batch_size": 32, "device": "cpu"}}
    on_ray = ll.tune(tuning, tmp_path / "ray", executor="ray")
    local = ll.tune(tuning, tmp_path / "local")
    assert [(t.values, t.scores) for t in on_ray.ranking] == [(t.values, t.scores) for t in local.ranking]
    assert (tmp_path / "ray" / "best.json").read_text() == (tmp_path / "local" / "best.json").read_text()
