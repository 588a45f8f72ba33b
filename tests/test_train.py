"""The one training loop: the accuracy matrix, the curve, determinism, the reference strategies."""

import json

import pytest
import torch

import lifelong as ll
from lifelong.batches import iterate_batches
from lifelong.strategies.base import Strategy
from lifelong.train import run_stream

FAST = ll.TrainConfig(optimizer="adam", lr=0.01, batch_size=16, epochs=2, device="cpu")


def tiny_model(stream, seed=0):
    torch.manual_seed(seed)
    return ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(16,))


def test_matrix_shapes_curve_and_initial_row(tiny_domain_stream):
    s = tiny_domain_stream
    _, result = ll.fit(s, tiny_model(s), ll.make_strategy("naive"), FAST)
    T = len(s)
    assert len(result.initial_accuracy) == T
    assert [len(r) for r in result.accuracy_matrix] == [T] * T
    assert all(0.0 <= a <= 1.0 for row in result.accuracy_matrix for a in row)
    assert len(result.curve) == T * FAST.epochs
    assert [p["task"] for p in result.curve] == [0, 0, 1, 1, 2, 2]
    last = result.curve[-1]
    assert last["seen_mean"] == pytest.approx(sum(result.accuracy_matrix[-1]) / T)
    assert set(result.metrics) == {"acc", "bwt", "fwt", "forgetting", "learning_accuracy", "aia", "min_acc"}
    assert len(result.task_times) == T and len(result.memory_bytes) == T


def test_naive_learns_each_task(tiny_domain_stream):
    s = tiny_domain_stream
    _, result = ll.fit(s, tiny_model(s), ll.make_strategy("naive"), FAST)
    diag = [result.accuracy_matrix[i][i] for i in range(len(s))]
    assert min(diag) > 0.9  # separable blobs: far above chance (0.25)


def test_same_seed_same_matrix_other_seed_differs(tiny_domain_stream):
    s = tiny_domain_stream
    runs = [ll.fit(s, tiny_model(s, seed), ll.make_strategy("naive"),
                   ll.TrainConfig(**{**FAST.__dict__, "seed": seed, "lr": 1e-3, "epochs": 1}))[1]
            for seed in (0, 0, 1)]
    assert runs[0].accuracy_matrix == runs[1].accuracy_matrix
    assert runs[0].curve == runs[1].curve
    assert runs[0].accuracy_matrix != runs[2].accuracy_matrix


def test_batches_cover_the_data_once_per_epoch():
    x = torch.arange(10.0).reshape(10, 1)
    y = torch.arange(10)
    batches = list(iterate_batches((x, y, y), 4, torch.Generator().manual_seed(0)))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    seen = torch.cat([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))


def test_task_incremental_masks_logits_to_the_task(tiny_task_stream):
    s = tiny_task_stream
    strategy = ll.make_strategy("naive")
    strategy.setup(s, FAST)
    model = tiny_model(s)
    x, t = s[1].x_test[:5], s[1].test_ids()[:5]
    pred = strategy.logits(model, x, t).argmax(1)
    assert set(pred.tolist()) <= {2, 3}


def test_joint_trains_on_all_tasks_seen_so_far(tiny_domain_stream):
    s = tiny_domain_stream
    joint = ll.make_strategy("joint")
    joint.setup(s, FAST)
    sizes = []
    for task in s:
        joint.before_task(None, task)
        sizes.append(joint.train_data(task)[0].shape[0])
    assert sizes == [s[0].x_train.shape[0] * k for k in (1, 2, 3)]
    _, naive = ll.fit(s, tiny_model(s), ll.make_strategy("naive"), FAST)
    _, result = ll.fit(s, tiny_model(s), ll.make_strategy("joint"), FAST)
    assert result.metrics["acc"] >= naive.metrics["acc"]
    assert result.memory_bytes[-1] > result.memory_bytes[0] > 0


class CountingStrategy(Strategy):

    def __init__(self):
        self.calls = {"before_task": 0, "after_backward": 0, "after_step": 0, "after_task": 0}

    def before_task(self, model, task):
        self.calls["before_task"] += 1
        return model

    def after_backward(self, model):
        assert all(p.grad is not None for p in model.parameters())
        self.calls["after_backward"] += 1

    def after_step(self, model):
        self.calls["after_step"] += 1

    def after_task(self, model, task, train=None):
        self.calls["after_task"] += 1


def test_hooks_are_called_in_order_and_count(tiny_domain_stream):
    s = tiny_domain_stream
    strategy = CountingStrategy()
    run_stream(s, tiny_model(s), strategy, FAST)
    steps = len(s) * FAST.epochs * -(-s[0].x_train.shape[0] // FAST.batch_size)
    assert strategy.calls == {"before_task": 3, "after_backward": steps, "after_step": steps,
                              "after_task": 3}


def test_shared_optimizer_keeps_state_across_tasks(tiny_domain_stream):
    s = tiny_domain_stream
    seen = []
    cfg = ll.TrainConfig(**{**FAST.__dict__, "fresh_optimizer": False})
    run_stream(s, tiny_model(s), ll.make_strategy("naive"), cfg,
               on_task_end=lambda m, opt, st: seen.append(id(opt)))
    assert len(set(seen)) == 1
    seen.clear()
    run_stream(s, tiny_model(s), ll.make_strategy("naive"), FAST,
               on_task_end=lambda m, opt, st: seen.append(opt))
    assert len({id(o) for o in seen}) == 3


def tiny_run_config(tmp_path, strategy: str) -> ll.RunConfig:
    """A split-mnist config on the tiny data: arrays cannot live in a config file, so the data
    goes through an IDX folder."""
    from conftest import idx_folder, tiny_arrays

    folder = tmp_path / "data"
    if not folder.exists():
        idx_folder(folder, tiny_arrays())
    return ll.RunConfig(benchmark="split-mnist", strategy=strategy,
                        benchmark_options={"source": str(folder)}, model_options={"hidden": [8]},
                        train=FAST)


def test_run_writes_a_complete_directory(tmp_path):
    cfg = tiny_run_config(tmp_path, "naive")
    result = ll.run(cfg, out=tmp_path / "runs")
    run_dir = tmp_path / "runs" / cfg.run_id()
    data = json.loads((run_dir / "result.json").read_text())
    for key in ("accuracy_matrix", "initial_accuracy", "curve", "metrics", "task_times",
                "environment", "memory_bytes", "model_sizes"):
        assert key in data
    assert set(data["metrics"]) == {"acc", "bwt", "fwt", "forgetting", "learning_accuracy", "aia", "min_acc"}
    assert data["environment"]["seed"] == 0 and data["environment"]["torch"] == torch.__version__
    assert json.loads((run_dir / "config.json").read_text())["strategy"] == "naive"
    lines = (run_dir / "accuracy_matrix.csv").read_text().splitlines()
    assert lines[0].startswith("after,") and lines[1].startswith("init,") and len(lines) == 2 + 2
    assert (run_dir / "metrics.csv").exists() and (run_dir / "curve.csv").exists()
    assert not list(run_dir.glob("*.pkl")) and not list(run_dir.glob("*.pt"))
    # a second call finds the finished run by its id and does not retrain
    again = ll.run(cfg, out=tmp_path / "runs")
    assert again.accuracy_matrix == result.accuracy_matrix and again.wall_time == result.wall_time


def test_run_id_derives_from_config():
    a = ll.RunConfig(strategy="naive", train=ll.TrainConfig(seed=1))
    assert a.run_id() == ll.RunConfig(strategy="naive", train=ll.TrainConfig(seed=1)).run_id()
    assert a.run_id() != ll.RunConfig(strategy="naive", train=ll.TrainConfig(seed=2)).run_id()
    assert a.run_id().startswith("rotated-mnist-naive-s1-")


@pytest.mark.parametrize(
    "options, message",
    [({"optimizer": "rmsprop"}, "unknown optimizer"), ({"lr": -1}, "lr must be in \\(0, 1e\\+30\\]"),
     ({"epochs": 0}, "epochs must be a positive"),
     ({"batch_size": 2.5}, "batch_size must be a positive integer"),
     ({"lr": float("inf")}, "lr must be in"), ({"weight_decay": float("nan")}, "weight_decay must be in"),
     ({"momentum": "x"}, "momentum must be in"), ({"fresh_optimizer": "no"}, "must be true or false"),
     ({"device": "tpu"}, "unknown device"), ({"momentum": 1.5}, "momentum")],
)
def test_bad_train_values_are_one_line_errors(options, message):
    with pytest.raises(ll.LifelongError, match=message):
        ll.TrainConfig(**options)



def test_cnn_and_a_user_module_train_through_the_loop(tiny_task_stream):
    s = tiny_task_stream
    torch.manual_seed(0)
    cnn = ll.make_model("cnn", s.input_shape, s.num_classes, channels=(4, 8), hidden=16)

    class UserNet(torch.nn.Module):  # any nn.Module with one output per class
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 4))

        def forward(self, x):
            return self.body(x)

    for model in (cnn, UserNet()):
        _, result = ll.fit(s, model, ll.make_strategy("naive"), FAST)
        assert result.accuracy_matrix[0][0] > 0.9
        assert result.model_sizes[0]["parameters"] == sum(p.numel() for p in model.parameters())


def test_cnn_rejects_flat_inputs():
    with pytest.raises(ll.LifelongError, match="cnn needs image inputs"):
        ll.make_model("cnn", (784,), 10)


def test_run_writes_default_hyperparameters_into_the_config(tmp_path):
    result = ll.run(tiny_run_config(tmp_path, "naive"), out=tmp_path / "runs")
    assert result.config["strategy_options"] == {}  # naive has none
    result = ll.run(tiny_run_config(tmp_path, "l2"), out=tmp_path / "runs")
    assert result.config["strategy_options"]["lam"] == ll.make_strategy("l2").lam


class TupleOut(torch.nn.Module):
    def __init__(self, d, c):
        super().__init__()
        self.linear = torch.nn.Linear(d, c)

    def forward(self, x):
        return self.linear(x.flatten(1)), x


@pytest.mark.parametrize("make, message", [
    (lambda d, c: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d, c - 1)), "gives outputs of"),
    (lambda d, c: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d + 1, c)), "does not take task"),
    (lambda d, c: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(d, c)).requires_grad_(False),
     "no trainable parameters"),
    (lambda d, c: TupleOut(d, c), "returns a tuple"),
])
def test_a_model_that_does_not_fit_the_stream_is_refused_before_training(tiny_domain_stream, make, message):
    s = tiny_domain_stream
    model = make(int(torch.tensor(s.input_shape).prod()), s.num_classes)
    with pytest.raises(ll.LifelongError, match=message):
        ll.fit(s, model, ll.make_strategy("naive"), FAST)


def test_fit_takes_a_strategy_name_and_a_dict_of_train_options(tiny_domain_stream):
    s = tiny_domain_stream
    _, by_name = ll.fit(s, tiny_model(s), "naive", {"optimizer": "adam", "lr": 0.01, "batch_size": 16,
                                                     "epochs": 2, "device": "cpu"})
    _, by_object = ll.fit(s, tiny_model(s), ll.make_strategy("naive"), FAST)
    assert by_name.accuracy_matrix == by_object.accuracy_matrix
    with pytest.raises(ll.LifelongError, match="fit: strategy must be a Strategy, got int"):
        ll.fit(s, tiny_model(s), 3, FAST)


def test_run_refuses_a_stream_of_another_benchmark_than_its_config(tmp_path, tiny_domain_stream):
    config = tiny_run_config(tmp_path, "naive")   # split-mnist
    with pytest.raises(ll.LifelongError, match="the stream given is"):
        ll.run(config, out=tmp_path / "runs", stream=tiny_domain_stream)
    assert not (tmp_path / "runs").exists()
