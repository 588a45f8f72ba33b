"""`lifelong compare`: the plan, the report folder, reuse, resume, parallel runs and progress."""

import csv
import io
import json

import pytest
from conftest import idx_folder, tiny_arrays

import lifelong as ll
from lifelong.cli import main
from lifelong.compare import DEFAULT_STRATEGIES, Comparison, compare
from lifelong.progress import ComparisonProgress, TensorBoardLogger
from lifelong.results import load_result
from lifelong.stats import mean_ci, t_quantile_975
from lifelong.strategies import resolved_hyperparameters

TRAIN = {"epochs": 2, "lr": 0.01, "batch_size": 32, "device": "cpu"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return idx_folder(tmp_path_factory.mktemp("data"), tiny_arrays())


def tiny(data_dir, **extra) -> Comparison:
    return Comparison.from_dict({
        "benchmark": "rotated-mnist", "strategies": ["naive", "joint"], "train": TRAIN,
        "benchmark_options": {"source": str(data_dir), "angles": [0, 45, 90]},
        "model_options": {"hidden": [16]}, **extra})


def numbers(results: dict) -> dict:
    return {k: (r.accuracy_matrix, r.curve, r.metrics) for k, r in results.items()}


def test_defaults_are_the_homework():
    c = Comparison.from_dict({})
    assert [m.name for m in c.methods] == list(DEFAULT_STRATEGIES)
    assert c.methods[0].label == "naive (baseline)" and c.seeds == (0,)
    (bench,) = c.benchmarks
    assert bench.name == "rotated-mnist" and bench.options == {}
    assert ll.TrainConfig(**c.train) == ll.preset("homework")
    assert len(c.plan()) == len(DEFAULT_STRATEGIES)


def test_plan_is_seed_major_with_per_method_options(data_dir):
    c = tiny(data_dir, seeds=[0, 1],
             strategies=["naive", {"name": "joint", "label": "joint (upper bound)"}])
    plan = c.plan()
    assert [(r.method, r.seed) for r in plan] == [
        ("naive (baseline)", 0), ("joint (upper bound)", 0), ("naive (baseline)", 1),
        ("joint (upper bound)", 1)]
    assert plan[3].config.train.seed == 1 and plan[3].config.strategy == "joint"
    assert plan[0].config.strategy_options == {}
    assert len({r.config.run_id() for r in plan}) == 4


def test_plan_writes_out_every_hyperparameter_so_run_ids_follow_defaults():
    c = Comparison.from_dict({"strategies": ["l2"], "params": {"l2": {"lam": 2.0}}})
    (run,) = c.plan()
    assert run.config.strategy_options == {**ll.make_strategy("l2").hyperparameters(), "lam": 2.0}
    assert ll.make_strategy("l2", **run.config.strategy_options).hyperparameters() == \
        run.config.strategy_options


def test_params_override_the_hyperparameter_preset():
    importance = pytest.importorskip("lifelong.strategies.importance")
    c = Comparison.from_dict({"strategies": ["ewc", "naive"], "hparams": "course",
                              "params": {"ewc": {"lam": 5}}})
    assert c.methods[0].options == {**importance.hyperparameter_preset("course", "ewc"), "lam": 5}
    assert c.methods[1].options == {}


@pytest.mark.parametrize("data, message", [
    ({"strategys": ["naive"]}, "unknown comparison key 'strategys'"),
    ({"seeds": []}, "seeds must be a non-empty list"),
    ({"strategies": ["naive", "naive"]}, r"label 'naive \(baseline\)' appears twice"),
    ({"train": {"lr": -1}}, "lr must be in \\(0, 1e\\+30\\]"),
    ({"train": {"seed": 3}}, "set seeds with"),
    ({"preset": "fast"}, "unknown preset 'fast'"),
    ({"strategies": [{"label": "x"}]}, "must be a name or a table with a `name`"),
])
def test_bad_comparisons_are_one_line_errors(data, message):
    with pytest.raises(ll.LifelongError, match=message):
        Comparison.from_dict(data)


def test_unknown_strategy_fails_before_training(tmp_path, capsys):
    assert main(["compare", "--strategies", "naive", "ewcc", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown strategy 'ewcc'; known:") and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()
    assert main(["compare", "--param", "lam=3", "--out", str(tmp_path)]) == 2
    assert "STRATEGY.KEY=VALUE" in capsys.readouterr().err


def test_cli_compare_writes_the_report_folder_and_reuses_runs(tmp_path, data_dir, capsys):
    spec = tmp_path / "cmp.toml"
    spec.write_text(
        f'strategies = ["naive", "joint"]\nseeds = [0, 1]\n'
        f'[benchmark_options]\nsource = "{data_dir}"\nangles = [0, 45, 90]\n'
        f'[model_options]\nhidden = [16]\n[train]\nepochs = 2\nlr = 0.01\nbatch_size = 32\n'
        f'device = "cpu"\n')
    out = tmp_path / "report"
    assert main(["compare", str(spec), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("comparison.json", "table.md", "table.csv", "report.html",
                 "rotated-mnist-curve.png", "rotated-mnist-curve.svg", "rotated-mnist-heatmaps.png"):
        assert (out / name).stat().st_size > 0, name
    plan = json.loads((out / "comparison.json").read_text())
    assert [(r["method"], r["seed"]) for r in plan["runs"]][:2] == [("naive (baseline)", 0),
                                                                      ("joint", 0)]
    # the table's numbers are the mean ± t-interval of the saved runs' metrics
    accs = [load_result(out / "runs" / r["run_id"]).metrics["acc"] for r in plan["runs"]
            if r["method"] == "joint"]
    row = next(r for r in csv.DictReader(io.StringIO((out / "table.csv").read_text()))
               if r["method"] == "joint")
    mean, half = mean_ci(accs)
    assert float(row["acc"]) == pytest.approx(mean) and float(row["acc_ci95"]) == pytest.approx(half)
    assert row["seeds"] == "2"
    # both methods learn the tiny stream perfectly: no significant difference to the baseline, marked
    assert f"| rotated-mnist | joint | 2 | {100 * mean:.2f} ± {100 * half:.2f} † |" in printed
    assert "† not significantly different from naive (baseline) at the 0.05 level" in printed
    assert "naive (baseline)" in printed and "report.html" in printed
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/result.json")}
    assert len(stamps) == 4
    assert main(["compare", str(spec), "--out", str(out)]) == 0  # reused, not retrained
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/result.json")}
    # report and plot redraw from saved results only
    (out / "report.html").unlink()
    (out / "rotated-mnist-curve.svg").unlink()
    assert main(["report", str(out)]) == 0 and (out / "report.html").exists()
    assert main(["plot", str(out)]) == 0 and (out / "rotated-mnist-curve.svg").exists()


class Stop(KeyboardInterrupt):
    """Ctrl-C in the middle of a run: it stops the comparison (a run's own error does not)."""


class StopInSecondRun(ComparisonProgress):
    def event(self, key, event):
        if event["event"] == "task_start" and event["task"] == 2 and key == self.second:
            raise Stop
        super().event(key, event)


def test_interrupted_comparison_resumes_to_the_same_numbers(tmp_path, data_dir):
    c = tiny(data_dir)
    whole = compare(c, tmp_path / "whole", display=ComparisonProgress(io.StringIO()), report=False)
    display = StopInSecondRun(io.StringIO())
    display.second = c.plan()[1].config.run_id()
    with pytest.raises(Stop):
        compare(c, tmp_path / "cut", display=display, report=False)
    assert (tmp_path / "cut" / "runs" / display.second / "checkpoint" / "latest.json").exists()
    resumed = compare(c, tmp_path / "cut", report=False)
    assert resumed[display.second].extra["resumed_after_task"] == 2
    assert numbers(resumed) == numbers(whole)


def test_parallel_jobs_give_the_same_numbers_as_one_job(tmp_path, data_dir):
    c = tiny(data_dir)
    log = io.StringIO()
    parallel = compare(c, tmp_path / "p", jobs=2, display=ComparisonProgress(log), report=False)
    serial = compare(c, tmp_path / "s", report=False)
    assert numbers(parallel) == numbers(serial)
    text = log.getvalue()
    assert "[2/2 runs]" in text and "task 3/3 epoch 2/2" in text


def test_progress_counts_runs_epochs_and_time_left():
    out = io.StringIO()
    p = ComparisonProgress(out)
    p.start([("a", "naive s0", 4), ("b", "ewc s0", 4)])
    p.reused("a")
    p.event("b", {"event": "task_start", "task": 1, "tasks": 2})  # resumed after task 1
    p.event("b", {"event": "epoch_end", "task": 1, "epoch": 1, "epochs": 2})
    assert p.done == {"a": 4, "b": 3} and p.trained == 1
    line = p.line()
    assert line.startswith("[1/2 runs] ewc s0: task 2/2 epoch 1/2 | ") and "left" in line
    p.finished("b")
    assert "[2/2 runs]" in out.getvalue() and "(ewc s0 done)" in out.getvalue()


def test_student_t_interval():
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 5, 29, 30, 31, 45, 100, 1000):
        assert t_quantile_975(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), abs=2e-4)
    mean, half = mean_ci([0.8, 0.9, 1.0])  # s = 0.1, t_{.975,2} = 4.302653
    assert mean == pytest.approx(0.9) and half == pytest.approx(4.302653 * 0.1 / 3**0.5)
    assert mean_ci([0.7]) == (0.7, 0.0)


def test_tensorboard_logger_writes_every_epoch_scalar(data_dir, tmp_path):
    c = tiny(data_dir, strategies=["naive"])
    calls = []

    class Writer:
        def __init__(self, logdir):
            calls.append(("dir", logdir))

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def close(self):
            calls.append(("close",))

    results = compare(c, tmp_path, display=ComparisonProgress(io.StringIO()), report=False)
    (result,) = results.values()
    logger = TensorBoardLogger(tmp_path / "tb", writer_factory=Writer)
    logger(c.plan()[0], result)
    assert calls[0] == ("dir", str(tmp_path / "tb" / "rotated-mnist" / "naive__baseline_" / "s0"))
    seen = [(v, s) for tag, *rest in calls[1:] if tag == "seen_mean_accuracy" for v, s in [rest]]
    assert seen == [(p["seen_mean"], i) for i, p in enumerate(result.curve, start=1)]
    assert ("accuracy/rot90", result.curve[-1]["accuracy"][2], 6) in calls
    assert calls[-1] == ("close",)


def test_run_takes_a_hyperparameter_preset_under_explicit_params(tmp_path, data_dir):
    importance = pytest.importorskip("lifelong.strategies.importance")
    args = ["run", "--strategy", "si", "--hparams", "course", "--param", "xi=0.5", "--data",
            str(data_dir), "--epochs", "1", "--batch-size", "32", "--device", "cpu",
            "--mopt", "hidden=[8]", "--out", str(tmp_path)]
    assert main(args) == 0
    (run_dir,) = tmp_path.iterdir()
    options = json.loads((run_dir / "config.json").read_text())["strategy_options"]
    chosen = {**importance.hyperparameter_preset("course", "si"), "xi": 0.5}
    assert options == resolved_hyperparameters("si", **chosen)  # defaults written out too
    assert {k: options[k] for k in chosen} == chosen


def test_executor_mistakes_are_one_line_errors(tmp_path, data_dir, monkeypatch, capsys):
    base = ["compare", "--strategies", "naive", "--data", str(data_dir), "--out", str(tmp_path)]
    assert main([*base, "--executor", "slurm"]) == 2
    assert "unknown executor 'slurm'; choose local or ray" in capsys.readouterr().err
    assert main([*base, "--jobs", "0"]) == 2
    assert "--jobs must be a positive integer" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if Ray were not installed
    assert main([*base, "--executor", "ray"]) == 2
    assert "--executor ray needs Ray: pip install 'lifelong[ray]'" in capsys.readouterr().err


class Boom(ComparisonProgress):
    """A run that fails with an error that is not the library's own (e.g. torch's)."""

    def event(self, key, event):
        if event["event"] == "task_start" and event["task"] == 1 and key == self.failing:
            raise RuntimeError("probability tensor contains either inf, nan or element < 0")
        super().event(key, event)


def test_a_run_failing_with_any_error_leaves_the_others_and_their_report(tmp_path, data_dir):
    c = tiny(data_dir)
    display = Boom(io.StringIO())
    display.failing = c.plan()[0].config.run_id()
    with pytest.raises(ll.LifelongError, match=r"1 of 2 runs failed \(first: .*RuntimeError: probability"):
        compare(c, tmp_path / "c", display=display)
    assert (tmp_path / "c" / "table.md").exists()          # the other run's report was written
    assert (tmp_path / "c" / "runs" / c.plan()[1].config.run_id() / "result.json").exists()


def test_a_bad_device_or_model_option_leaves_a_finished_comparison_untouched(tmp_path, data_dir):
    import dataclasses

    c = tiny(data_dir)
    compare(c, tmp_path / "c", report=False)
    plan = (tmp_path / "c" / "comparison.json").read_text()
    for bad in (dataclasses.replace(c, model_options={"foo": 1}),
                dataclasses.replace(c, train={**c.train, "device": "cuda:99"})):
        with pytest.raises(ll.LifelongError):
            compare(bad, tmp_path / "c", report=False)
        assert (tmp_path / "c" / "comparison.json").read_text() == plan


@pytest.mark.parametrize("data, message", [
    ({"strategies": []}, "strategies must be a non-empty list"),
    ({"benchmark": "rotated-mnist", "benchmarks": ["split-mnist"]}, "either benchmark or benchmarks"),
    ({"strategies": ["naive"], "params": {"ewc": {"lam": 1}}}, "params for 'ewc', which is not among"),
    ({"train": "x"}, "train must be a table"),
    ({"seeds": [2**70]}, "seeds must be integers in"),
])
def test_comparison_file_mistakes_are_one_line_errors(data, message):
    with pytest.raises(ll.LifelongError, match=message):
        Comparison.from_dict(data)


def test_an_unreachable_ray_address_is_a_one_line_error_before_anything_is_written(monkeypatch):
    from lifelong.executors import check_executor

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")   # nothing listens on port 1
    with pytest.raises(ll.LifelongError, match="cannot reach the Ray cluster at RAY_ADDRESS=127.0.0.1:1"):
        check_executor("ray", 1)
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    check_executor("ray", 1)                            # left to Ray
