"""The user docs' "A new method" example (docs/extending.md), run as written: one file defines a
method that stores logits in its memory, and it trains alone and combined with a regulariser."""

import importlib
import re
import sys
from pathlib import Path

import pytest
import torch

import lifelong as ll
from lifelong.registry import STRATEGIES

DOCS = Path(__file__).parents[1] / "docs" / "extending.md"


def blocks(section: str) -> list[str]:
    text = DOCS.read_text().split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", text, re.S)


@pytest.fixture
def logit_replay(tmp_path, monkeypatch):
    (tmp_path / "logit_replay.py").write_text(blocks("A new method")[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("logit_replay")
    yield module
    STRATEGIES.unregister("logit-replay")
    sys.modules.pop("logit_replay", None)


def test_the_usage_block_runs_as_written(logit_replay, capsys):
    exec(compile(blocks("A new method")[1], "usage", "exec"), {})
    acc, memory = capsys.readouterr().out.split()
    assert 0.0 <= float(acc) <= 1.0 and int(memory) > 0


def test_the_memory_keeps_the_logits_the_model_gave_and_the_loss_pulls_towards_them(logit_replay,
                                                                                    tiny_class_stream):
    stream = tiny_class_stream
    torch.manual_seed(0)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(8,))
    strategy = ll.make_strategy("logit-replay", alpha=2.0, buffer_size=8, replay_batch_size=8)
    strategy.setup(stream, ll.TrainConfig(seed=0))
    task = stream[0]
    batch = (task.x_train[:8], task.y_train[:8], task.train_ids()[:8])
    with torch.no_grad():
        outputs = model(batch[0])
    assert strategy.extra_loss(model, batch, outputs, task) == 0.0  # nothing stored yet
    strategy.after_forward(model, batch, outputs, task)
    assert torch.equal(strategy.memory_["logits"], outputs) and torch.equal(strategy.memory_["x"], batch[0])
    assert float(strategy.extra_loss(model, batch, outputs, task).detach()) == 0.0  # the model has not moved
    with torch.no_grad():
        model.net[-1].bias.add_(1.0)  # every logit moves by 1: MSE 1, times alpha
    assert float(strategy.extra_loss(model, batch, outputs, task).detach()) == pytest.approx(2.0)


def test_it_combines_with_a_regulariser_and_its_state_is_saved(logit_replay, tiny_class_stream, tmp_path):
    stream = tiny_class_stream
    torch.manual_seed(0)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(8,))
    strategy = ll.make_strategy("logit-replay+ewc", **{"logit-replay.buffer_size": 20, "ewc.lam": 10})
    model, result = ll.fit(stream, model, strategy, ll.TrainConfig(epochs=1, batch_size=16, lr=0.01))
    assert strategy.hyperparameters()["logit-replay"] == {"alpha": 0.5, "buffer_size": 20,
                                                          "replay_batch_size": 32}
    assert strategy.members[0].memory_["logits"].shape == (20, stream.num_classes)
    ll.save_learner(tmp_path / "learner", model, strategy)
    _, loaded = ll.load_learner(tmp_path / "learner", model)
    assert torch.equal(loaded.members[0].memory_["logits"], strategy.members[0].memory_["logits"])
