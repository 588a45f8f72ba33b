"""`lifelong tune` / `ll.tune`: validation splits (no test data read), the search space, grid and
random points, ranking by the mean over seeds, resume, and best.json into `run` and `compare`."""

import json

import numpy as np
import pytest
import torch
from conftest import idx_folder, tiny_arrays

import lifelong as ll
from lifelong.cli import build_comparison, build_run_config, main, make_parser, parse_grid
from lifelong.data import rotated
from lifelong.data.sources import stratified_split
from lifelong.data.validation import validation_stream
from lifelong.registry import STRATEGIES
from lifelong.results import RunResult
from lifelong.search import Range, grid_points, parse_range, random_points
from lifelong.strategies import make_strategy, search_space
from lifelong.tuning import Tuning, rank

TRAIN = {"epochs": 1, "lr": 0.01, "batch_size": 32, "device": "cpu"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return idx_folder(tmp_path_factory.mktemp("data"), tiny_arrays())


def tiny(data_dir, **extra) -> dict:
    return {"strategy": "ewc", "benchmark_options": {"source": str(data_dir), "angles": [0, 45, 90]},
            "model_options": {"hidden": [16]}, "train": TRAIN, "grid": {"lam": [1.0, 100.0]}, **extra}


class Untouchable:
    """Test data that fails the moment anything reads it."""

    def __getattr__(self, name):
        raise AssertionError(f"the test split was read (.{name})")

    def __getitem__(self, item):
        raise AssertionError("the test split was read ([])")

    def __len__(self):
        raise AssertionError("the test split was read (len)")


def rows(x: torch.Tensor, y: torch.Tensor) -> set:
    """Each example as (its pixels, its label)."""
    return {(tuple(r.flatten().tolist()), int(label)) for r, label in zip(x, y)}


# ---------------------------------------------------------------- validation splits
def test_stratified_split_by_fraction_holds_out_that_share_of_every_class():
    y = np.array([0] * 10 + [1] * 3 + [2] * 2)
    fit, held = stratified_split(y, seed=0, fraction=0.2)
    assert sorted(np.bincount(y[held]).tolist()) == [1, 1, 2]  # round(2)=2, round(0.6)→1, round(0.4)→1
    assert np.bincount(y[held]).tolist() == [2, 1, 1]
    assert sorted(np.concatenate([fit, held]).tolist()) == list(range(len(y)))
    again = stratified_split(y, seed=0, fraction=0.2)
    assert all((a == b).all() for a, b in zip((fit, held), again))


def test_validation_stream_scores_on_held_out_training_data_and_never_reads_the_test_split():
    stream = rotated(angles=(0, 45, 90), arrays=tiny_arrays())
    originals = [(t.x_train.clone(), t.y_train.clone()) for t in stream]
    for task in stream:  # anything reading the test split now fails
        task.x_test, task.y_test = Untouchable(), Untouchable()
    held = validation_stream(stream, fraction=0.25, seed=3)
    assert len(held) == 3 and held.benchmark == stream.benchmark
    for task, (x, y) in zip(held, originals):
        assert torch.bincount(task.y_test).tolist() == [10, 10, 10, 10]  # 25% of 40 per class
        assert torch.bincount(task.y_train).tolist() == [30, 30, 30, 30]
        held_out, kept = rows(task.x_test, task.y_test), rows(task.x_train, task.y_train)
        assert held_out | kept == rows(x, y) and not held_out & kept
    assert held.meta["validation"] == {"fraction": 0.25, "seed": 3, "tasks": None}


def test_first_tasks_keeps_only_the_first_k_tasks():
    stream = rotated(angles=(0, 45, 90), arrays=tiny_arrays())
    held = validation_stream(stream, tasks=2)
    assert [t.name for t in held] == [t.name for t in stream][:2]
    with pytest.raises(ll.LifelongError, match="has only 3 tasks"):
        validation_stream(stream, tasks=4)


def test_every_benchmark_takes_the_validation_option():
    stream = ll.make_benchmark("rotated-mnist", arrays=tiny_arrays(), angles=[0, 45],
                               validation={"fraction": 0.5})
    assert [t.x_train.shape[0] for t in stream] == [80, 80] and stream[0].x_test.shape[0] == 80
    with pytest.raises(ll.LifelongError, match="validation has no key 'share'"):
        ll.make_benchmark("rotated-mnist", arrays=tiny_arrays(), validation={"share": 0.5})
    with pytest.raises(ll.LifelongError, match="validation fraction"):
        ll.make_benchmark("rotated-mnist", arrays=tiny_arrays(), validation={"fraction": 1.5})


# ---------------------------------------------------------------- the space and its points
@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_default_search_space_names_hyperparameters_whose_values_build(name):
    space = search_space(name)
    known = make_strategy(name).hyperparameters()
    for key, values in space.items():
        assert key in known and len(values) >= 2
        for value in values:
            assert make_strategy(name, **{key: value}).hyperparameters()[key] == value


def test_a_combination_searches_its_members_spaces():
    replay = search_space("replay")["replay_batch_size"]
    assert search_space("ewc+replay") == {"ewc.lam": search_space("ewc")["lam"],
                                          "replay.replay_batch_size": replay}


def test_grid_is_every_combination_first_key_slowest():
    assert grid_points({"a": [1, 2], "b": ["x", "y", "z"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
        {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"}]
    with pytest.raises(ll.LifelongError, match="needs random search"):
        grid_points({"lr": "1e-4..1e-2"})


def test_random_points_are_seeded_distinct_and_inside_their_ranges():
    space = {"lr": "log:1e-4..1e-2", "lam": [1, 10, 100], "k": "1..50"}
    points = random_points(space, 12, seed=5)
    assert points == random_points(space, 12, seed=5) != random_points(space, 12, seed=6)
    assert len({tuple(p.items()) for p in points}) == 12
    for p in points:
        assert 1e-4 <= p["lr"] <= 1e-2 and p["lam"] in (1, 10, 100)
        assert isinstance(p["k"], int) and 1 <= p["k"] <= 50
    assert random_points({"a": [1, 2]}, 5) == [{"a": 1}, {"a": 2}]  # the whole (small) grid
    assert parse_range("x", "log:1..1e4") == Range(1, 1e4, log=True)
    for bad in ("1..", "5..1", "log:0..1", "a..b"):
        with pytest.raises(ll.LifelongError, match="is not LOW..HIGH"):
            parse_range("x", bad)


def test_the_users_values_replace_or_add_to_the_default_space_and_fixed_values_leave_it():
    t = Tuning.from_dict({"strategy": "ewc", "grid": {"lr": [1e-3, 1e-2]}})
    assert t.space() == {"lam": list(search_space("ewc")["lam"]), "lr": [1e-3, 1e-2]}
    t = Tuning.from_dict({"strategy": "ewc", "grid": {"lam": [1, 10, 100], "lr": [1e-3, 1e-2]}})
    assert len(t.points()) == 6 and t.points()[1] == {"lam": 1, "lr": 1e-2}
    t = Tuning.from_dict({"strategy": "ewc", "params": {"lam": 5.0}, "grid": {"gamma": [0.5, 1.0]}})
    assert t.space() == {"gamma": [0.5, 1.0]}
    plan = t.plan()
    assert [r.config.strategy_options["lam"] for r in plan] == [5.0, 5.0]
    assert plan[0].config.benchmark_options["validation"] == {"fraction": 0.1, "seed": 0, "tasks": None}


def test_a_method_key_that_is_also_a_train_option_is_the_methods_unless_prefixed():
    t = Tuning.from_dict({"strategy": "ewc", "params": {"lam": 1.0},
                          "grid": {"batch_size": [16], "train.batch_size": [64]}})
    (run,) = t.plan()
    assert run.config.strategy_options["batch_size"] == 16 and run.config.train.batch_size == 64


def test_first_tasks_protocol_plans_runs_on_the_first_k_tasks():
    t = Tuning.from_dict({"strategy": "ewc", "protocol": "first-tasks", "tasks": 2, "validation": 0.2})
    assert t.plan()[0].config.benchmark_options["validation"] == {"fraction": 0.2, "seed": 0, "tasks": 2}


@pytest.mark.parametrize("data, message", [
    ({"strategy": "ewc", "grid": {"lambda": [1, 10]}}, "ewc has no hyper-parameter 'lambda' to tune"),
    ({"strategy": "naive"}, "naive has no default search space"),
    ({"strategy": "ewc", "params": {"lam": 1.0}, "grid": {"lam": [1, 2]}}, "lam is both fixed"),
    ({"strategy": "ewc", "train": {"lr": 0.1}, "grid": {"lr": [1, 2]}}, "lr is both fixed"),
    ({"strategy": "ewc", "grid": {"lam": [-1.0]}}, "lam"),
    ({"strategy": "ewc", "protocol": "test"}, "unknown protocol 'test'"),
    ({"strategy": "ewc", "metric": "accuracy"}, "unknown metric 'accuracy'"),
    ({"grid": {"lr": [1]}}, "name the strategy"),
    ({"strategy": "ewc", "benchmark_options": {"validation": {}}}, "carves the validation split itself"),
])
def test_bad_tunings_are_one_line_errors(data, message):
    with pytest.raises(ll.LifelongError, match=message) as info:
        Tuning.from_dict(data)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("flag, message", [
    ("lam", "--grid expects KEY=V1,V2"), ("lam=", "--grid expects KEY=V1,V2"),
    ("lam=1,,2", "has an empty value"), ("=1,2", "--grid expects KEY=V1,V2"),
])
def test_bad_grid_syntax_is_a_one_line_error(flag, message):
    with pytest.raises(ll.LifelongError, match=message):
        parse_grid([flag])
    assert parse_grid(["lam=1,1e2", "fisher=true,empirical", "lr=log:1e-4..1e-2"]) == {
        "lam": [1, 100.0], "fisher": [True, "empirical"], "lr": "log:1e-4..1e-2"}
    with pytest.raises(ll.LifelongError, match="given twice"):
        parse_grid(["lam=1", "lam=2"])


# ---------------------------------------------------------------- ranking
def fake(acc_by_seed: dict, tuning: Tuning) -> dict:
    """Results whose final accuracies give each (point label, seed) the ACC asked for."""
    results = {}
    for run in tuning.plan():
        acc = acc_by_seed[run.method][run.seed]
        results[run.config.run_id()] = RunResult(run.config.run_id(), run.config.to_dict(), ["a", "b"],
                                                 [0.1, 0.1], [[1.0, 0.0], [2 * acc - 1.0, 1.0]], {})
    return results


def test_points_are_ranked_by_the_mean_over_seeds_not_one_seed():
    t = Tuning.from_dict({"strategy": "ewc", "grid": {"lam": [1.0, 10.0, 100.0]}, "seeds": [0, 1]})
    scores = {"lam=1": {0: 0.9, 1: 0.5}, "lam=10": {0: 0.8, 1: 0.75}, "lam=100": {0: 0.6, 1: 0.6}}
    ranking = rank(t, t.plan(), fake(scores, t))
    assert [r.values["lam"] for r in ranking] == [10.0, 1.0, 100.0]
    assert ranking[0].scores == pytest.approx([0.8, 0.75]) and ranking[0].mean == pytest.approx(0.775)
    lower = Tuning.from_dict({"strategy": "ewc", "grid": {"lam": [1.0, 10.0, 100.0]}, "seeds": [0, 1],
                              "metric": "forgetting"})  # forgetting: lower is better
    by_forgetting = rank(lower, lower.plan(), fake(scores, lower))  # F = 1 - (2 ACC - 1) here
    assert [r.mean for r in by_forgetting] == pytest.approx([0.45, 0.6, 0.8])  # ascending
    partial = fake(scores, t)
    partial.pop(t.plan()[-1].config.run_id())  # lam=100 lacks seed 1: not ranked
    assert [r.values["lam"] for r in rank(t, t.plan(), partial)] == [10.0, 1.0]


# ---------------------------------------------------------------- whole tunings
class Display:
    """Counts runs reused and trained."""

    def __init__(self):
        self.reused_ids, self.trained = [], []

    def start(self, runs): ...
    def event(self, key, event): ...
    def close(self): ...

    def reused(self, key):
        self.reused_ids.append(key)

    def finished(self, key, ok=True):
        self.trained.append(key)


def test_tune_never_reads_the_test_split_and_a_rerun_retrains_only_missing_trials(data_dir, tmp_path):
    stream = ll.make_benchmark("rotated-mnist", source=str(data_dir), angles=[0, 45, 90])
    for task in stream:
        task.x_test, task.y_test = Untouchable(), Untouchable()
    tuning = tiny(data_dir, seeds=[0, 1])
    first = ll.tune(tuning, tmp_path / "t", stream=stream)
    assert len(first.ranking) == 2 and all(len(t.scores) == 2 for t in first.ranking)
    clean = ll.tune(tuning, tmp_path / "clean")  # the real test data: the same numbers
    assert [(t.values, t.scores) for t in clean.ranking] == [(t.values, t.scores) for t in first.ranking]
    run_dirs = sorted((tmp_path / "t" / "runs").iterdir())
    assert len(run_dirs) == 4
    import shutil

    shutil.rmtree(run_dirs[0])
    display = Display()
    again = ll.tune(tuning, tmp_path / "t", display=display)
    assert len(display.trained) == 1 and len(display.reused_ids) == 3
    assert [(t.values, t.scores) for t in again.ranking] == [(t.values, t.scores) for t in first.ranking]


def test_best_file_round_trips_into_run_and_compare(data_dir, tmp_path, capsys):
    out = tmp_path / "tune"
    train = {k: v for k, v in TRAIN.items() if k != "lr"}
    result = ll.tune(tiny(data_dir, grid={"lam": [1.0, 100.0], "lr": [0.01, 0.001]}, train=train), out)
    best = json.loads((out / "best.json").read_text())["strategies"]["ewc"]
    chosen = result.best.values
    assert best["strategy_options"] == {"lam": chosen["lam"]} and best["train"] == {"lr": chosen["lr"]}
    assert best["score"] == result.best.mean and len(best["trials"]) == 4
    si = ll.tune(tiny(data_dir, strategy="si", grid={"lam": [1.0, 10.0]}), out)  # a second method joins
    kept = json.loads((out / "best.json").read_text())["strategies"]
    assert set(kept) == {"ewc", "si"} and kept["ewc"] == best

    config = build_run_config(make_parser().parse_args(["run", "--strategy", "ewc", "--hparams",
                                                        str(out / "best.json")]))
    assert config.strategy_options == {"lam": chosen["lam"]} and config.train.lr == chosen["lr"]
    config = build_run_config(make_parser().parse_args(["run", "--strategy", "ewc", "--hparams",
                                                        str(out / "best.json"), "--lr", "0.5",
                                                        "--param", "lam=7"]))
    assert config.strategy_options == {"lam": 7} and config.train.lr == 0.5  # flags win
    comparison = build_comparison(make_parser().parse_args(
        ["compare", "--strategies", "naive", "ewc", "si", "--hparams", str(out / "best.json")]))
    plan = {r.config.strategy: r.config for r in comparison.plan()}
    assert plan["ewc"].strategy_options["lam"] == chosen["lam"] and plan["ewc"].train.lr == chosen["lr"]
    assert plan["si"].strategy_options["lam"] == si.best.values["lam"]
    assert plan["naive"].train.lr == ll.preset("homework").lr  # not tuned: the comparison's own
    comparison = build_comparison(make_parser().parse_args(
        ["compare", "--strategies", "ewc", "--hparams", str(out / "best.json"), "--lr", "0.2"]))
    assert comparison.plan()[0].config.train.lr == 0.2
    note = capsys.readouterr().err  # the comparison's --lr wins, and says whose value it replaced
    assert note.count("\n") == 1
    assert f"ewc runs with the comparison's lr=0.2, not the lr={chosen['lr']:g} of" in note

    code = main(["run", "--strategy", "ewc", "--hparams", str(out / "best.json"), "--data", str(data_dir),
                 "--bopt", "angles=0,45", "--mopt", "hidden=[16]", "--epochs", "1", "--device", "cpu",
                 "--out", str(tmp_path / "runs")])
    assert code == 0
    (saved,) = (tmp_path / "runs").glob("*/result.json")
    config = json.loads(saved.read_text())["config"]
    assert config["strategy_options"]["lam"] == chosen["lam"] and config["train"]["lr"] == chosen["lr"]


def test_tune_from_the_command_line_in_two_processes(data_dir, tmp_path, capsys):
    out = tmp_path / "tune"
    code = main(["tune", "--strategy", "ewc", "--grid", "lam=1,100", "--jobs", "2", "--data", str(data_dir),
                 "--bopt", "angles=0,45", "--mopt", "hidden=[16]", "--epochs", "1", "--lr", "0.01",
                 "--device", "cpu", "--protocol", "first-tasks", "--tasks", "1", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "mean acc" in printed and "best (first-tasks protocol" in printed
    best = json.loads((out / "best.json").read_text())["strategies"]["ewc"]
    assert best["protocol"] == {"name": "first-tasks", "validation": 0.1, "split_seed": 0, "tasks": 1}
    for result in out.glob("runs/*/result.json"):
        data = json.loads(result.read_text())
        assert len(data["task_names"]) == 1  # the first task only


@pytest.mark.parametrize("content, message", [
    (None, "not found"), ("{", "is not valid JSON"), ('{"a": 1}', "is not a best-parameters file"),
    ('{"format": "lifelong-hparams", "strategies": {"ewc": {"train": {"speed": 1}}}}', "'speed' is not one"),
    ('{"format": "lifelong-hparams", "strategies": {"si": {}}}', "has no values for 'ewc'"),
])
def test_missing_or_invalid_hparams_files_are_one_line_errors(tmp_path, capsys, content, message):
    path = tmp_path / "best.json"
    if content is not None:
        path.write_text(content)
    assert main(["run", "--strategy", "ewc", "--hparams", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["--grid", "lambda=1,10"], "ewc has no hyper-parameter 'lambda'"),
    (["--grid", "lam"], "--grid expects KEY=V1,V2"),
    (["--grid", "lam=1..10"], "needs random search"),
])
def test_tune_command_errors_are_one_line(argv, message, capsys, tmp_path):
    assert main(["tune", "--strategy", "ewc", "--out", str(tmp_path / "t"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "t").exists()


def test_a_failed_trial_is_named_in_the_error_and_in_best_json(data_dir, tmp_path):
    """A diverging point does not stop the others; best.json keeps the best finished point and
    says which trials failed, so a reader of the file knows the ranking is partial."""
    out = tmp_path / "tune"
    train = {k: v for k, v in TRAIN.items() if k != "lr"}
    with pytest.raises(ll.LifelongError, match="1 of 2 trials failed"):
        ll.tune(tiny(data_dir, grid={"lam": [1.0], "lr": [0.01, 1e30]}, train=train), out)
    entry = json.loads((out / "best.json").read_text())["strategies"]["ewc"]
    assert entry["train"] == {"lr": 0.01}
    assert [t["values"] for t in entry["trials"]] == [{"lam": 1.0, "lr": 0.01}]
    (label, reason), = entry["failed"].items()
    assert "lr=1e+30" in label and "diverged" in reason
