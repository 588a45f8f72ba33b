"""Going on learning: a learner trained on k tasks (in memory or loaded) learns the stream's later tasks."""

import dataclasses

import pytest
import torch
from conftest import tiny_arrays

import lifelong as ll
from lifelong.data.benchmarks import rotated
from lifelong.evaluate import evaluate_tasks
from lifelong.metrics import continued_metrics
from lifelong.registry import STRATEGIES
from lifelong.report import collect
from lifelong.results import load_result, result_problem, save_result
from lifelong.strategies import load_all

load_all()
FAST = ll.TrainConfig(optimizer="adam", lr=0.01, batch_size=16, epochs=1, device="cpu")
TASK_AWARE = ("pnn", "packnet", "cpg")


def streams(name: str):
    scenario = "task" if name in TASK_AWARE else "domain"
    return (rotated(angles=(0, 45), arrays=tiny_arrays(), scenario=scenario),
            rotated(angles=(0, 45, 90), arrays=tiny_arrays(), scenario=scenario))


def fresh_model(stream):
    torch.manual_seed(0)
    return ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=[16])


def trained(name: str, **params):
    learned, longer = streams(name)
    strategy = ll.make_strategy(name, **params)
    model, _ = ll.fit(learned, fresh_model(learned), strategy, FAST)
    return learned, longer, model, strategy


def accuracies(model, strategy, stream):
    return evaluate_tasks(model, strategy, list(stream))


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_a_saved_learner_goes_on_exactly_as_the_one_in_memory(name, tmp_path):
    learned, longer, model, strategy = trained(name, **({"condition": "class"} if name == "generative-replay"
                                                        else {}))
    ll.save_learner(tmp_path / "l", model, strategy)
    loaded_model, loaded = ll.load_learner(tmp_path / "l", fresh_model(learned))
    before = accuracies(model, strategy, learned)

    torch.manual_seed(1)
    model_a, a = ll.fit(longer, model, strategy, FAST, first_task=2)
    torch.manual_seed(1)
    model_b, b = ll.fit(longer, loaded_model, loaded, FAST, first_task=2)

    assert a.initial_accuracy[:2] == before                   # the learner as given
    assert len(a.accuracy_matrix) == 1 and len(a.accuracy_matrix[0]) == 3
    assert a.extra["first_task"] == 2 and a.task_names == ["rot0", "rot45", "rot90"]
    assert a.accuracy_matrix == b.accuracy_matrix and a.metrics == b.metrics
    assert strategy.tasks_learned_ == loaded.tasks_learned_ == 3
    state_a, _ = strategy.state_dict()
    state_b, _ = loaded.state_dict()
    assert state_a.keys() == state_b.keys() and all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    x = longer[2].x_test
    with torch.no_grad():
        assert torch.equal(strategy.logits(model_a.eval(), x, longer[2].test_ids()),
                           loaded.logits(model_b.eval(), x, longer[2].test_ids()))


def test_going_on_keeps_every_learned_task_in_the_penalty():
    """EWC's paper penalty holds one Fisher and anchor per task: after going on, three."""
    _, longer, model, strategy = trained("ewc")
    assert len(strategy.task_omegas_) == len(strategy.task_anchors_) == strategy.tasks_learned_ == 2
    first_fisher = strategy.task_omegas_[0]
    ll.fit(longer, model, strategy, FAST, first_task=2)
    assert len(strategy.task_omegas_) == len(strategy.task_anchors_) == strategy.tasks_learned_ == 3
    assert all(torch.equal(first_fisher[k], strategy.task_omegas_[0][k]) for k in first_fisher)
    assert strategy.tasks_learned_ == 3 and strategy.num_tasks_ == 3


def test_going_on_trains_only_the_new_tasks_and_learns_them():
    _, longer, model, strategy = trained("naive")
    events = []
    _, result = ll.fit(longer, model, strategy, dataclasses.replace(FAST, epochs=5), progress=events.append,
                       first_task=2)
    assert {e["task"] for e in events if e["event"] == "task_start"} == {2}
    assert result.accuracy_matrix[0][2] > result.initial_accuracy[2]
    assert result.metrics == continued_metrics(result.accuracy_matrix, result.initial_accuracy, 2)


def test_continued_metrics_by_hand():
    start = [0.9, 0.8, 0.3, 0.2]
    R = [[0.7, 0.6, 0.9, 0.4],
         [0.5, 0.6, 0.7, 0.8]]
    m = continued_metrics(R, start, 2)
    assert m["acc"] == pytest.approx((0.5 + 0.6 + 0.7 + 0.8) / 4)
    assert m["bwt"] == pytest.approx(0.7 - 0.9)                  # new block [[.9, .4], [.7, .8]]
    assert m["forgetting"] == pytest.approx(0.9 - 0.7)
    assert m["learning_accuracy"] == pytest.approx((0.9 + 0.8) / 2)
    assert m["old_tasks_change"] == pytest.approx(((0.5 - 0.9) + (0.6 - 0.8)) / 2)
    with pytest.raises(ValueError, match="needs 2 rows of 4"):
        continued_metrics(R[:1], start, 2)


def test_a_continued_result_is_saved_loaded_and_left_out_of_reports(tmp_path):
    _, longer, model, strategy = trained("naive")
    _, result = ll.fit(longer, model, strategy, FAST, first_task=2)
    save_result(result, tmp_path / "run")
    assert load_result(tmp_path / "run").accuracy_matrix == result.accuracy_matrix
    assert (tmp_path / "run" / "accuracy_matrix.csv").read_text().splitlines()[2].startswith("rot90,")
    broken = {**result.to_dict(), "extra": {"first_task": 1}}
    assert result_problem(broken) == "accuracy_matrix is not 2×3"
    with pytest.raises(ll.LifelongError, match="holds a continued fit"):
        collect(tmp_path / "run")


def test_going_on_is_refused_in_one_line_when_it_cannot_be_right(tmp_path):
    learned, longer, model, strategy = trained("ewc")
    with pytest.raises(ll.LifelongError, match=r"has learned 2 task\(s\) already; pass first_task=2"):
        ll.fit(longer, model, strategy, FAST)                  # a fresh run would keep the old penalty
    with pytest.raises(ll.LifelongError, match=r"first_task=1, but the strategy has learned 2"):
        ll.fit(longer, model, strategy, FAST, first_task=1)
    with pytest.raises(ll.LifelongError, match="stream has only 2 tasks"):
        ll.fit(learned, model, strategy, FAST, first_task=2)
    with pytest.raises(ll.LifelongError, match="first 2 tasks are"):
        ll.fit(rotated(angles=(0, 30, 90), arrays=tiny_arrays()), model, strategy, FAST, first_task=2)
    with pytest.raises(ll.LifelongError, match="same scenario"):
        ll.fit(rotated(angles=(0, 45, 90), arrays=tiny_arrays(), scenario="task"), model, strategy, FAST,
               first_task=2)
    with pytest.raises(ll.LifelongError, match="checkpoints are for whole runs"):
        ll.fit(longer, model, strategy, FAST, first_task=2, run_dir=tmp_path, checkpoint=True)
    with pytest.raises(ll.LifelongError, match="first_task must be a task index"):
        ll.fit(longer, model, strategy, FAST, first_task=True)
    with pytest.raises(ll.LifelongError, match=r"first_task=2, but the strategy has learned 0"):
        ll.fit(longer, fresh_model(longer), ll.make_strategy("ewc"), FAST, first_task=2)
    assert strategy.tasks_learned_ == 2                       # refusals change nothing


def test_generative_replay_conditioned_on_tasks_cannot_grow_its_condition():
    _, longer, model, strategy = trained("generative-replay", condition="task")
    with pytest.raises(ll.LifelongError, match="conditioned on the 2 tasks it learned"):
        ll.fit(longer, model, strategy, FAST, first_task=2)


@pytest.mark.parametrize("name", TASK_AWARE)
def test_methods_that_allocate_weights_per_task_go_on_without_touching_the_learned_tasks(name):
    """PNN freezes old columns, PackNet and CPG fix the weights each task owns: going on to a
    new task leaves the learned tasks' accuracies exactly as they were."""
    _, longer, model, strategy = trained(name)
    model, result = ll.fit(longer, model, strategy, FAST, first_task=2)
    assert result.accuracy_matrix[0][:2] == result.initial_accuracy[:2]
    assert result.metrics["old_tasks_change"] == 0.0
    if name == "pnn":
        assert len(model.columns) == 3


def test_a_learner_saved_before_continuation_existed_loads_and_goes_on(tmp_path):
    """Files of the first release have no task names or count of learned tasks in their setup:
    the count is the stream length it was set up with, and the names are not checked."""
    import json

    from lifelong.saved_state import json_digest

    learned, longer, model, strategy = trained("ewc")
    folder = ll.save_learner(tmp_path / "l", model, strategy)
    meta = json.loads((folder / "learner.json").read_text())
    del meta["setup"]["task_names"], meta["setup"]["tasks_learned"], meta["meta_sha256"]
    meta["meta_sha256"] = json_digest(meta)
    (folder / "learner.json").write_text(json.dumps(meta))
    model, loaded = ll.load_learner(folder, fresh_model(learned))
    assert loaded.tasks_learned_ == 2
    _, result = ll.fit(longer, model, loaded, FAST, first_task=2)
    assert len(result.accuracy_matrix) == 1
