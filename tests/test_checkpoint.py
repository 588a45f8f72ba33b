"""Checkpoints: an interrupted run resumes with identical numbers; bad checkpoints are refused."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import Interrupt, idx_folder, stop_at, tiny_arrays, whole_and_resumed

import lifelong as ll
from lifelong import checkpoint as ckpt
from lifelong.saved_state import json_digest
from lifelong.strategies.base import Strategy

FAST = dict(epochs=2, lr=0.01, batch_size=32, device="cpu")


class NoisyAnchor(Strategy):
    """Test strategy with learned tensor state that depends on the global torch RNG."""


    def __init__(self, lam: float = 0.1) -> None:
        self.lam = lam
        self.anchor_: dict[str, torch.Tensor] = {}

    def after_task(self, model, task, train=None) -> None:
        self.anchor_ = {k: p.detach().clone() + 0.01 * torch.randn(p.shape)
                        for k, p in model.named_parameters()}

    def penalty(self, model):
        if not self.anchor_:
            return 0.0
        return self.lam * sum(((p - self.anchor_[k]) ** 2).sum() for k, p in model.named_parameters())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return idx_folder(tmp_path_factory.mktemp("data"), tiny_arrays())


def config(data_dir, strategy="naive", **train):
    return ll.RunConfig(benchmark="rotated-mnist", strategy=strategy,
                        benchmark_options={"source": str(data_dir), "angles": [0, 45, 90]},
                        model_options={"hidden": [16]}, train=ll.TrainConfig(**{**FAST, **train}))


def same_numbers(a: ll.RunResult, b: ll.RunResult) -> None:
    assert a.accuracy_matrix == b.accuracy_matrix
    assert a.initial_accuracy == b.initial_accuracy
    assert a.curve == b.curve
    assert a.metrics == b.metrics
    assert a.task_names == b.task_names and len(a.memory_bytes) == len(b.memory_bytes)


@pytest.mark.parametrize("strategy, train", [
    ("naive", {"optimizer": "sgd", "momentum": 0.9, "fresh_optimizer": False}),
    ("joint", {}),
])
def test_run_interrupted_after_a_task_resumes_to_identical_numbers(tmp_path, data_dir, strategy, train):
    cfg = config(data_dir, strategy, **train)
    whole = ll.run(cfg, out=tmp_path / "whole")
    with pytest.raises(Interrupt):
        ll.run(cfg, out=tmp_path / "cut", progress=stop_at(2))
    run_dir = tmp_path / "cut" / cfg.run_id()
    assert ckpt.has_checkpoint(run_dir) and not (run_dir / "result.json").exists()
    assert json.loads((run_dir / "checkpoint" / "latest.json").read_text())["tasks_done"] == 2
    events = []
    resumed = ll.run(cfg, out=tmp_path / "cut", progress=events.append)
    assert resumed.extra["resumed_after_task"] == 2
    assert {e["task"] for e in events if e["event"] == "task_start"} == {2}  # only the last task
    same_numbers(whole, resumed)
    assert not ckpt.has_checkpoint(run_dir)  # finished: the result replaces the checkpoint


def test_strategy_state_and_global_rng_are_restored(tmp_path, data_dir):
    cfg = config(data_dir)
    stream = ll.make_benchmark(cfg.benchmark, **cfg.benchmark_options)

    def go(run_dir, progress=None):
        torch.manual_seed(0)
        model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=[16])
        return ll.fit(stream, model, NoisyAnchor(), cfg.train, progress, cfg.to_dict(), run_dir,
                      checkpoint=True)

    _, whole = go(tmp_path / "a")
    with pytest.raises(Interrupt):
        go(tmp_path / "b", stop_at(1))
    torch.manual_seed(123)  # a different global RNG state: the checkpoint must restore its own
    _, resumed = go(tmp_path / "b")
    same_numbers(whole, resumed)
    assert resumed.memory_bytes[-1] > 0


def test_process_killed_with_sigkill_resumes_to_identical_numbers(tmp_path, data_dir):
    cfg = config(data_dir, "joint")
    whole = ll.run(cfg, out=tmp_path / "whole")
    script = textwrap.dedent(f"""
        import os, signal, json, lifelong as ll
        cfg = ll.RunConfig.from_dict(json.loads({json.dumps(json.dumps(cfg.to_dict()))}))
        def die(event):
            if event["event"] == "epoch_end" and event["task"] == 1 and event["epoch"] == 1:
                os.kill(os.getpid(), signal.SIGKILL)
        ll.run(cfg, out={str(tmp_path / "cut")!r}, progress=die)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    run_dir = tmp_path / "cut" / cfg.run_id()
    assert ckpt.has_checkpoint(run_dir) and not (run_dir / "result.json").exists()
    same_numbers(whole, ll.run(cfg, out=tmp_path / "cut"))


@pytest.fixture
def interrupted(tmp_path, data_dir):
    cfg = config(data_dir, "joint")
    with pytest.raises(Interrupt):
        ll.run(cfg, out=tmp_path, progress=stop_at(2))
    return cfg, tmp_path / cfg.run_id() / "checkpoint"


def test_corrupt_tensor_file_is_refused(interrupted):
    cfg, folder = interrupted
    (tensors,) = folder.glob("task-*.safetensors")
    blob = bytearray(tensors.read_bytes())
    blob[-5] ^= 0xFF
    tensors.write_bytes(bytes(blob))
    with pytest.raises(ll.LifelongError, match=r"safetensors is damaged \(corrupt: checksum mismatch"):
        ll.run(cfg, out=folder.parent.parent)


def test_garbage_json_and_foreign_checkpoint_are_refused(interrupted, data_dir):
    cfg, folder = interrupted
    meta = json.loads((folder / "latest.json").read_text())
    other = config(data_dir, "joint", seed=7)
    other_dir = folder.parent.parent / other.run_id()
    other_dir.mkdir()
    (folder.parent / "checkpoint").rename(other_dir / "checkpoint")
    with pytest.raises(ll.LifelongError, match="belongs to another configuration"):
        ll.run(other, out=folder.parent.parent)
    (other_dir / "checkpoint" / "latest.json").write_text("{not json")
    with pytest.raises(ll.LifelongError, match="unreadable"):
        ll.run(other, out=folder.parent.parent)
    meta["tensors_file"] = "../../evil.safetensors"
    meta["config"] = other.to_dict()
    meta["meta_sha256"] = json_digest(meta)  # a consistent forgery: caught by the name check
    (other_dir / "checkpoint" / "latest.json").write_text(json.dumps(meta))
    with pytest.raises(ll.LifelongError, match="bad tensor file"):
        ll.run(other, out=folder.parent.parent)


def test_checkpoint_of_another_model_shape_is_refused(tmp_path, data_dir):
    cfg = config(data_dir)
    stream = ll.make_benchmark(cfg.benchmark, **cfg.benchmark_options)
    wide = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=[32])
    with pytest.raises(Interrupt):
        ll.fit(stream, wide, ll.make_strategy("naive"), cfg.train, stop_at(1), cfg.to_dict(),
               tmp_path, checkpoint=True)
    narrow = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=[16])
    with pytest.raises(ll.LifelongError, match="does not match the model"):
        ll.fit(stream, narrow, ll.make_strategy("naive"), cfg.train, None, cfg.to_dict(),
               tmp_path, checkpoint=True)


def test_foreign_or_malformed_result_json_is_refused(tmp_path, data_dir):
    cfg, other = config(data_dir), config(data_dir, seed=3)
    ll.run(cfg, out=tmp_path)
    (tmp_path / other.run_id()).mkdir()
    text = (tmp_path / cfg.run_id() / "result.json").read_text()
    (tmp_path / other.run_id() / "result.json").write_text(text)
    with pytest.raises(ll.LifelongError, match="belongs to another configuration"):
        ll.run(other, out=tmp_path)
    data = json.loads(text)
    data["accuracy_matrix"][0] = [7.0, 0.1, 0.1]
    (tmp_path / cfg.run_id() / "result.json").write_text(json.dumps(data))
    with pytest.raises(ll.LifelongError, match="malformed"):
        ll.run(cfg, out=tmp_path)


def test_optimizer_state_round_trips_exactly():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    tensors: dict = {}
    flat = ckpt._flatten_optimizer(opt.state_dict(), tensors)
    flat = json.loads(json.dumps(flat))
    back = ckpt._unflatten_optimizer(flat, {k[len("optim/"):]: v for k, v in tensors.items()})
    fresh = torch.optim.Adam(model.parameters(), lr=0.1)
    fresh.load_state_dict(back)
    for a, b in zip(opt.state_dict()["state"].values(), fresh.state_dict()["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in ("exp_avg", "exp_avg_sq", "step"))
    assert fresh.param_groups[0]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize("strategy", ["ewc", "mas", "si", "rwalk", "scp"])
def test_homework_methods_resume_to_identical_numbers(tmp_path, data_dir, strategy):
    from lifelong.registry import STRATEGIES
    from lifelong.strategies import load_all

    load_all()
    if strategy not in STRATEGIES:
        pytest.skip(f"{strategy} is not registered")
    cfg = config(data_dir, strategy, epochs=1)
    whole, resumed = whole_and_resumed(cfg, tmp_path)
    same_numbers(whole, resumed)


def test_fit_without_a_run_config_resumes_only_the_same_data_model_and_hyperparameters(tmp_path, data_dir):
    cfg = config(data_dir)
    stream = ll.make_benchmark(cfg.benchmark, **cfg.benchmark_options)

    def model():
        torch.manual_seed(0)
        return ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=[16])

    with pytest.raises(Interrupt):
        ll.fit(stream, model(), ll.make_strategy("ewc", lam=10.0), cfg.train, stop_at(1),
               run_dir=tmp_path, checkpoint=True)
    other_data = ll.make_benchmark(cfg.benchmark, **{**cfg.benchmark_options, "angles": [0, 45, 100]})
    for args in ((other_data, model(), ll.make_strategy("ewc", lam=10.0)),
                 (stream, model(), ll.make_strategy("ewc", lam=0.0))):
        with pytest.raises(ll.LifelongError, match="another configuration"):
            ll.fit(*args, cfg.train, run_dir=tmp_path, checkpoint=True)
    _, result = ll.fit(stream, model(), ll.make_strategy("ewc", lam=10.0), cfg.train,
                       run_dir=tmp_path, checkpoint=True)
    assert result.extra["resumed_after_task"] == 1
