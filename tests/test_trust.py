"""Nothing believed that lifelong did not compute, nothing written where it cannot be, no broken
run shown as a number (issue 18: items 1, 2, 4, 5, 7)."""

import errno
import json
import os
import pathlib

import pytest
from conftest import idx_folder, tiny_arrays
from test_report import fake_result

import lifelong as ll
from lifelong.cli import main
from lifelong.metrics import METRICS
from lifelong.results import load_result, metric_value, save_result
from lifelong.tables import table_rows


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return idx_folder(tmp_path_factory.mktemp("data"), tiny_arrays())


def config(data_dir, strategy="naive", **train):
    return ll.RunConfig(benchmark="rotated-mnist", strategy=strategy,
                        benchmark_options={"source": str(data_dir), "angles": [0, 45, 90]},
                        model_options={"hidden": [16]},
                        train=ll.TrainConfig(**{"epochs": 1, "lr": 0.01, "batch_size": 32, "device": "cpu",
                                                **train}))


def edit(path, **metrics):
    data = json.loads(path.read_text())
    data["metrics"].update(metrics)
    path.write_text(json.dumps(data))


# ------------------------------------------------------------------ 1. saved metrics agree with R
def test_an_edited_metric_is_refused_naming_the_file(tmp_path, capsys):
    save_result(fake_result("ewc", 0, [0.8, 0.8, 0.9]), tmp_path / "ewc-0")
    save_result(fake_result("naive", 0, [0.3, 0.6, 0.9]), tmp_path / "naive-0")
    path = tmp_path / "naive-0" / "result.json"
    edit(path, acc=0.99)
    with pytest.raises(ll.LifelongError, match=r"metrics\['acc'\] is 0.99 but its accuracy matrix gives 0.6"):
        load_result(tmp_path / "naive-0")
    assert main(["report", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith(f"warning: left out of the report: {path} is malformed")
    assert "naive" not in out and "99.00" not in out
    assert main(["report", str(tmp_path / "naive-0")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path} is malformed (metrics['acc'] is 0.99")


def test_a_reusing_run_refuses_an_edited_result(tmp_path, data_dir, capsys):
    cfg = config(data_dir)
    ll.run(cfg, out=tmp_path)
    path = tmp_path / cfg.run_id() / "result.json"
    edit(path, forgetting=0.5)
    with pytest.raises(ll.LifelongError, match=r"result.json is malformed \(metrics\['forgetting'\]"):
        ll.run(cfg, out=tmp_path)


def test_tables_means_and_intervals_come_from_the_matrix():
    runs = [fake_result("ewc", s, [0.8, 0.8, 0.9 - 0.1 * s]) for s in (0, 1)]
    true = [r.metrics["acc"] for r in runs]
    for r in runs:
        r.metrics = {k: 0.99 for k in r.metrics}  # never read for a number shown
    acc = METRICS.get("acc")
    assert [metric_value(r, acc) for r in runs] == pytest.approx(true)
    (row,) = table_rows({"ewc": runs})
    assert row["acc"] == pytest.approx(sum(true) / 2) and row["acc_ci95"] > 0


# ------------------------------------------------------------------ 4. a diverging run says so
def compare_args(data_dir, out, *extra):
    return ["compare", "--benchmark", "rotated-mnist", "--data", str(data_dir), "--bopt", "angles=0,45,90",
            "--mopt", "hidden=[16]", "--epochs", "1", "--batch-size", "32", "--device", "cpu",
            "--optimizer", "sgd", "--lr", "0.01", "--out", str(out), *extra]


def test_a_nan_loss_stops_the_run_in_one_line(tmp_path, data_dir, capsys):
    args = ["run", "--benchmark", "rotated-mnist", "--data", str(data_dir), "--bopt", "angles=0,45,90",
            "--mopt", "hidden=[16]", "--epochs", "1", "--batch-size", "32", "--device", "cpu",
            "--optimizer", "sgd", "--lr", "1e10", "--out", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: task 'rot0' diverged in epoch 1: the mean loss is ")
    assert "the learning rate (lr=1e+10)" in err and not list(tmp_path.glob("*/result.json"))


def test_a_diverging_task_keeps_the_tasks_before_it(tmp_path, data_dir):
    cfg = config(data_dir, "ewc", optimizer="sgd")
    cfg = ll.RunConfig(**{**cfg.__dict__, "strategy_options": {"lam": 1e20}})
    with pytest.raises(ll.LifelongError, match=r"task 'rot45' diverged in epoch 1: .*penalty weight λ "
                       r"\(lam=1e\+20\).*kept: the checkpoint after task 1"):
        ll.run(cfg, out=tmp_path)
    run_dir = tmp_path / cfg.run_id()
    assert (run_dir / "checkpoint" / "task-001.safetensors").exists()
    assert not (run_dir / "result.json").exists()
    with pytest.raises(ll.LifelongError, match=r"1 task\(s\) had finished before it \(nothing saved: no "
                       r"output folder\)$"):
        ll.run(cfg)


def test_a_comparison_reports_a_diverged_run_as_failed(tmp_path, data_dir, capsys):
    out = tmp_path / "cmp"
    assert main(compare_args(data_dir, out, "--strategies", "naive", "ewc", "--param", "ewc.lam=1e20")) == 2
    last = capsys.readouterr().err.splitlines()[-1]  # after the progress lines
    assert last.startswith("error: 1 of 2 runs failed (first: ewc (lam=1e+20) s0: task 'rot45' diverged")
    table = (out / "table.md").read_text()
    assert "naive" in table and "ewc" not in table


# ------------------------------------------------------------------ 2. an unwritable folder, found first
def refuse_probe(monkeypatch):
    """The probe file cannot be written, as on a read-only file system (tests run as root, where
    chmod does not stop writes)."""
    real = pathlib.Path.write_bytes

    def write_bytes(self, data):
        if self.name.startswith(".lifelong-probe"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)


def run_args(data_dir, out, *extra):
    return ["run", "--benchmark", "rotated-mnist", "--data", str(data_dir), "--bopt", "angles=0,45,90",
            "--mopt", "hidden=[16]", "--epochs", "1", "--batch-size", "32", "--device", "cpu",
            "--out", str(out), *extra]


@pytest.mark.parametrize("command", ["run", "compare"])
def test_an_unwritable_out_folder_is_refused_before_training(tmp_path, data_dir, capsys, monkeypatch,
                                                             command):
    refuse_probe(monkeypatch)
    args = run_args(data_dir, tmp_path) if command == "run" else compare_args(data_dir, tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == (f"error: output folder {tmp_path} cannot be written (Read-only file system); choose "
                   "another --out or make it writable\n")  # no progress line: nothing trained
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_a_read_only_folder_is_refused(tmp_path, data_dir, capsys):
    tmp_path.chmod(0o555)
    try:
        assert main(run_args(data_dir, tmp_path)) == 2
    finally:
        tmp_path.chmod(0o755)
    assert "cannot be written (Permission denied)" in capsys.readouterr().err


def test_a_later_write_error_is_one_line_saying_what_was_kept(tmp_path, data_dir, monkeypatch):
    import lifelong.results

    def full_disk(path, mode="r", *args, **kwargs):
        if "task-002.safetensors" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return open(path, mode, *args, **kwargs)

    cfg = config(data_dir, "ewc")
    monkeypatch.setattr(lifelong.results, "open", full_disk, raising=False)
    run_dir = tmp_path / cfg.run_id()
    with pytest.raises(ll.LifelongError) as error:
        ll.run(cfg, out=tmp_path)
    assert str(error.value) == (f"cannot write {run_dir / 'checkpoint' / 'task-002.safetensors'} (No space "
                                "left on device) after task 'rot45'; the checkpoint after task 1 is kept (a "
                                "rerun resumes there)")
    assert not list((run_dir / "checkpoint").glob(".*tmp*"))
    monkeypatch.undo()
    assert ll.run(cfg, out=tmp_path).extra["resumed_after_task"] == 1


def test_atomic_write_errors_are_one_line(tmp_path, monkeypatch):
    from lifelong.results import atomic_write

    (tmp_path / "a.txt").write_text("old")
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(ll.LifelongError, match=r"a.txt \(I/O error\); the files written before are kept "
                       r"and its earlier version is unchanged$"):
        atomic_write(tmp_path / "a.txt", "new")
    assert (tmp_path / "a.txt").read_text() == "old" and len(list(tmp_path.iterdir())) == 1


# ------------------------------------------------------------------ 5. no comparison overwritten silently
def test_another_comparison_into_the_same_folder_is_refused(tmp_path, data_dir, capsys):
    out = tmp_path / "cmp"
    assert main(compare_args(data_dir, out, "--strategies", "naive")) == 0
    assert main(compare_args(data_dir, out, "--strategies", "naive", "ewc")) == 0  # adds a run: nothing lost
    plan = (out / "comparison.json").read_text()
    capsys.readouterr()
    assert main(compare_args(data_dir, out, "--strategies", "naive")) == 2
    assert capsys.readouterr().err == (f"error: {out} holds another comparison (1 of its 2 runs are not in "
                                       "this one, e.g. ewc on rotated-mnist); give another --out, or --force "
                                       "to replace it\n")
    assert (out / "comparison.json").read_text() == plan
    assert main(compare_args(data_dir, out, "--strategies", "naive", "ewc")) == 0  # the same plan: reused
    assert main(compare_args(data_dir, out, "--strategies", "naive", "--force")) == 0
    assert len(json.loads((out / "comparison.json").read_text())["runs"]) == 1


def test_a_comparison_inside_a_run_folder_is_refused(tmp_path, data_dir, capsys):
    cfg = config(data_dir)
    ll.run(cfg, out=tmp_path)
    inside = tmp_path / cfg.run_id() / "cmp"
    assert main(compare_args(data_dir, inside, "--strategies", "naive")) == 2
    assert capsys.readouterr().err == (f"error: --out {inside} is inside the run folder "
                                       f"{tmp_path / cfg.run_id()}; give a comparison its own folder\n")
    assert not inside.exists()


# ------------------------------------------------------------------ 7. data types said, not guessed
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_boolean_images_map_to_zero_and_one(kind):
    import numpy as np
    import torch

    from lifelong.data.sources import from_arrays

    x = np.zeros((4, 28, 28), dtype=bool)
    x[:, :, :14] = True
    y = np.array([0, 1, 0, 1])
    if kind == "torch":
        x, y = torch.from_numpy(x), torch.from_numpy(y)
    xtr, _, xte, _ = from_arrays(x, y, x, y)
    assert set(xtr.unique().tolist()) == {0.0, 1.0} and xte.mean().item() == 0.5


def test_load_learner_given_its_json_file_says_to_give_the_folder(tmp_path):
    import torch

    stream = ll.make_benchmark("rotated-mnist", arrays=tiny_arrays(), angles=[0, 45])
    torch.manual_seed(0)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=[8])
    strategy = ll.make_strategy("naive")
    model, _ = ll.fit(stream, model, strategy, {"epochs": 1, "device": "cpu", "batch_size": 32})
    ll.save_learner(tmp_path / "learner", model, strategy)
    file = tmp_path / "learner" / "learner.json"
    with pytest.raises(ll.LifelongError) as error:
        ll.load_learner(file, model)
    assert str(error.value) == (f"{file} is a file; give load_learner the folder save_learner wrote "
                                f"({tmp_path / 'learner'}), not one of its files")


def test_an_error_lists_at_most_ten_values():
    import numpy as np

    y = np.arange(229)
    x = np.random.default_rng(0).random((229, 784), dtype=np.float32)
    with pytest.raises(ll.LifelongError) as error:
        ll.make_benchmark("split-mnist", arrays=(x, y, x, y), classes_per_task=2)
    message = str(error.value)
    assert "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, …] (229 in all) evenly" in message and "10," not in message
    with pytest.raises(ll.LifelongError, match=r"got \[0, 1, .*, 9, …\] \(51 in all\)$"):
        ll.make_benchmark("rotated-mnist", arrays=tiny_arrays(), angles=[*range(50), "x"])
