"""What a researcher's comparison adds: the task-incremental score of class-incremental runs (the
same forward pass), further metrics with the reason where one is absent, the reference of
intransigence, several scenarios side by side, and seeds that also vary the stream."""

import csv
import io
import json

import pytest
import torch
from conftest import idx_folder, tiny_arrays

import lifelong as ll
from lifelong.cli import main
from lifelong.compare import Comparison
from lifelong.data import split
from lifelong.errors import LifelongError
from lifelong.evaluate import evaluate_tasks
from lifelong.models.modes import eval_mode
from lifelong.results import load_result, save_result

FAST = ll.TrainConfig(optimizer="adam", lr=0.01, batch_size=16, epochs=2, device="cpu")
TRAIN = {"epochs": 2, "lr": 0.01, "batch_size": 32, "device": "cpu"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return idx_folder(tmp_path_factory.mktemp("data"), tiny_arrays())


def fitted(stream, strategy="naive", config=FAST):
    torch.manual_seed(0)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(16,))
    return ll.fit(stream, model, ll.make_strategy(strategy), config)


def test_a_class_incremental_run_records_its_task_incremental_matrix(tiny_class_stream, tmp_path):
    model, result = fitted(tiny_class_stream)
    T = len(tiny_class_stream)
    assert len(result.task_il_initial_accuracy) == T and len(result.task_il_accuracy_matrix) == T
    strategy = ll.make_strategy("naive")
    strategy.setup(tiny_class_stream, FAST)
    # the last row by hand: the final model's outputs, masked to each task's classes
    with eval_mode(model), torch.no_grad():
        for j, task in enumerate(tiny_class_stream):
            out = model(task.x_test)
            keep = torch.full_like(out, float("-inf"))
            keep[:, list(task.classes)] = 0
            hand = float(((out + keep).argmax(1) == task.y_test).float().mean())
            assert result.task_il_accuracy_matrix[-1][j] == pytest.approx(hand)
    # the class-incremental matrix is what it was: the same model's plain accuracy
    assert result.accuracy_matrix[-1] == evaluate_tasks(model, strategy, tiny_class_stream.tasks)
    # naive forgets task 0 among all classes, but tells its two classes apart: task-IL ≥ class-IL
    assert result.task_il_accuracy_matrix[-1][0] >= result.accuracy_matrix[-1][0]
    assert result.metrics["til_acc"] == pytest.approx(sum(result.task_il_accuracy_matrix[-1]) / T)
    save_result(result, tmp_path / "run")
    again = load_result(tmp_path / "run")
    assert again.task_il_accuracy_matrix == result.task_il_accuracy_matrix
    assert (tmp_path / "run" / "task_il_accuracy_matrix.csv").exists()
    data = json.loads((tmp_path / "run" / "result.json").read_text())
    data["task_il_accuracy_matrix"][0] = [0.5]
    (tmp_path / "run" / "result.json").write_text(json.dumps(data))
    with pytest.raises(LifelongError, match="malformed .task_il_accuracy_matrix is not 2×2"):
        load_result(tmp_path / "run")


def test_other_scenarios_record_no_task_incremental_matrix(tiny_domain_stream, tiny_task_stream):
    for stream in (tiny_domain_stream, tiny_task_stream):
        _, result = fitted(stream)
        assert result.task_il_accuracy_matrix == [] and "til_acc" not in result.metrics
        assert result.extra["scenario"] == stream.scenario


def test_split_mnist_domain_incremental_labels_each_example_by_its_place_in_the_task():
    stream = split(classes_per_task=2, arrays=tiny_arrays(), scenario="domain")
    assert stream.num_classes == 2 and [t.classes for t in stream] == [(0, 1), (0, 1)]
    classed = split(classes_per_task=2, arrays=tiny_arrays(), scenario="class")
    for dom, cls in zip(stream, classed):
        assert dom.name == cls.name and torch.equal(dom.x_test, cls.x_test)
        assert torch.equal(dom.y_test, cls.y_test - cls.classes[0])  # 2 → 0, 3 → 1
    ordered = split(classes_per_task=2, arrays=tiny_arrays(), class_order=[3, 0, 2, 1])
    assert [t.classes for t in ordered] == [(3, 0), (2, 1)]
    def order(seed):
        return [t.classes for t in split(classes_per_task=2, arrays=tiny_arrays(), shuffle_order=True,
                                         seed=seed)]

    drawn = [order(s) for s in range(4)]
    assert drawn[0] == order(0)  # the same seed, the same order
    assert len({tuple(d) for d in drawn}) > 1


def test_a_run_without_a_learning_curve_has_no_min_acc(tiny_domain_stream):
    no_curve = ll.TrainConfig(**{**FAST.__dict__, "eval_every_epoch": False})
    _, result = fitted(tiny_domain_stream, config=no_curve)
    assert "min_acc" not in result.metrics and "aia" in result.metrics


def compare_cli(tmp_path, data_dir, *flags):
    out = tmp_path / "cmp"
    argv = ["compare", "--data", str(data_dir), "--mopt", "hidden=[16]", "--epochs", "2", "--lr", "0.01",
            "--batch-size", "32", "--device", "cpu", "--out", str(out), *flags]
    return main(argv), out


def test_scenarios_side_by_side_with_intransigence_against_joint(tmp_path, data_dir, capsys):
    code, out = compare_cli(tmp_path, data_dir, "--benchmark", "split-mnist", "--scenario", "task",
                            "domain", "class", "--strategies", "naive", "joint")
    assert code == 0
    printed = capsys.readouterr().out
    plan = json.loads((out / "comparison.json").read_text())
    assert plan["benchmarks"] == ["split-mnist task-IL", "split-mnist domain-IL", "split-mnist class-IL"]
    assert "### split-mnist: the scenarios side by side" in printed
    assert "| method | seeds | ACC task-IL (%) | ACC domain-IL (%) | ACC class-IL (%) |" in printed
    assert "### Further metrics" in printed and "task-IL ACC (%)" in printed
    further = printed.split("### Further metrics")[1].split("###")[0]
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in further.splitlines()
            if line.startswith("| split-mnist")}
    assert rows["split-mnist class-IL", "joint"].count("|") == rows["split-mnist task-IL", "joint"].count("|")
    # the reference against itself: intransigence 0; task-IL scores only for the class-IL runs
    assert "| 0.00 |" in rows["split-mnist task-IL", "joint"]
    assert rows[("split-mnist task-IL", "naive (baseline)")].rstrip().endswith("|  |  |")
    results = {(r["benchmark"], r["method"]): load_result(out / "runs" / r["run_id"])
               for r in plan["runs"]}
    naive = results["split-mnist class-IL", "naive (baseline)"]
    joint = results["split-mnist class-IL", "joint"]
    expected = sum(joint.accuracy_matrix[k][k] - naive.accuracy_matrix[k][k] for k in range(2)) / 2
    assert "| split-mnist class-IL | naive (baseline) | " in further
    assert f"{100 * expected:.2f}" in rows[("split-mnist class-IL", "naive (baseline)")]
    table = csv.DictReader(io.StringIO((out / "seeds.csv").read_text()))
    seeds = {(r["benchmark"], r["method"]): r for r in table}
    naive_row = seeds["split-mnist class-IL", "naive (baseline)"]
    assert float(naive_row["intransigence"]) == pytest.approx(expected)
    assert seeds["split-mnist task-IL", "naive (baseline)"]["til_acc"] == ""
    page = (out / "report.html").read_text()
    assert "the scenarios side by side" in page and "Further metrics" in page


def test_no_reference_run_is_said_in_one_line_not_a_zero(tmp_path, data_dir, capsys):
    code, out = compare_cli(tmp_path, data_dir, "--strategies", "naive", "ewc", "--bopt", "angles=0,45")
    assert code == 0
    printed = capsys.readouterr().out
    assert "intransigence (%)" not in printed
    assert ("intransigence: no reference run: add joint to the comparison (--strategies … joint) or name "
            "one with --reference LABEL") in printed
    code, _ = compare_cli(tmp_path, data_dir, "--strategies", "naive", "ewc", "--bopt", "angles=0,45",
                          "--reference", "ewc")
    printed = capsys.readouterr().out
    assert code == 0 and "intransigence (%)" in printed and "no reference run" not in printed
    assert json.loads((out / "comparison.json").read_text())["reference"] == "ewc"


def test_reference_and_vary_mistakes_are_one_line_errors(tmp_path, data_dir, capsys):
    code, _ = compare_cli(tmp_path, data_dir, "--strategies", "naive", "ewc", "--reference", "joint")
    assert code == 2
    assert "reference 'joint' is not a method of this comparison; give one of naive (baseline), ewc" in \
        capsys.readouterr().err
    for data, message in (({"vary": ["order"]}, "vary must list"),
                          ({"vary": "stream", "benchmark_options": {"seed": 3}},
                           "drop the benchmark option seed"),
                          ({"scenarios": ["task", "joint"]}, "scenarios must list some of"),
                          ({"scenarios": ["task"], "benchmark_options": {"scenario": "task"}}, "not both")):
        with pytest.raises(LifelongError, match=message):
            Comparison.from_dict(data)


def test_vary_stream_gives_each_seed_its_own_stream_and_keeps_the_default(data_dir):
    base = {"benchmark": "split-mnist", "strategies": ["naive"], "seeds": [0, 1], "train": TRAIN,
            "benchmark_options": {"source": str(data_dir)}}
    plain = Comparison.from_dict(base).plan()
    assert [r.config.benchmark_options for r in plain] == [{"source": str(data_dir)}] * 2
    varied = Comparison.from_dict({**base, "vary": ["stream"]}).plan()
    assert [r.config.benchmark_options for r in varied] == [
        {"source": str(data_dir), "seed": s, "shuffle_order": True} for s in (0, 1)]
    assert len({r.stream_key for r in varied}) == 2 and len({r.stream_key for r in plain}) == 1
    permuted = Comparison.from_dict({**base, "benchmark": "permuted-mnist", "vary": "stream"}).plan()
    assert [r.config.benchmark_options.get("seed") for r in permuted] == [0, 1]
    assert "shuffle_order" not in permuted[0].config.benchmark_options  # its seed draws the permutations
