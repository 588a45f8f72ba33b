"""save_learner / load_learner: a trained model and its strategy, back from safetensors + JSON."""

import json

import pytest
import torch
from conftest import tiny_arrays

import lifelong as ll
from lifelong.data.benchmarks import rotated, split
from lifelong.registry import STRATEGIES
from lifelong.strategies import load_all

load_all()
FAST = ll.TrainConfig(optimizer="adam", lr=0.01, batch_size=16, epochs=1, device="cpu")
TASK_AWARE = ("pnn", "packnet", "cpg")


def trained(name: str):
    stream = (split(arrays=tiny_arrays(), scenario="task") if name in TASK_AWARE
              else rotated(angles=(0, 45), arrays=tiny_arrays()))

    def model():
        torch.manual_seed(0)
        return ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=[16])

    strategy = ll.make_strategy(name)
    fitted, _ = ll.fit(stream, model(), strategy, FAST)
    return stream, fitted, strategy, model


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_a_saved_learner_predicts_and_holds_the_same_state_after_loading(name, tmp_path):
    stream, model, strategy, fresh = trained(name)
    ll.save_learner(tmp_path / "learner", model, strategy)
    loaded_model, loaded = ll.load_learner(tmp_path / "learner", fresh())
    assert type(loaded) is type(strategy) and loaded.hyperparameters() == strategy.hyperparameters()
    for task in stream:
        with torch.no_grad():
            before = strategy.logits(model.eval(), task.x_test, task.test_ids())
            after = loaded.logits(loaded_model.eval(), task.x_test, task.test_ids())
        assert torch.equal(before, after)
    saved, _ = strategy.state_dict()
    restored, _ = loaded.state_dict()
    assert saved.keys() == restored.keys()
    assert all(torch.equal(saved[k], restored[k]) for k in saved)


def test_damaged_or_foreign_learner_files_are_one_line_errors(tmp_path):
    _, model, strategy, fresh = trained("ewc")
    folder = ll.save_learner(tmp_path / "l", model, strategy)
    with pytest.raises(ll.LifelongError, match="no saved learner in"):
        ll.load_learner(tmp_path / "nothing", fresh())
    wide = ll.make_model("mlp", (1, 8, 8), 4, hidden=[32])
    with pytest.raises(ll.LifelongError, match="saved from another model"):
        ll.load_learner(folder, wide)
    meta = json.loads((folder / "learner.json").read_text())
    meta["hyperparameters"]["lam"] = 1e9              # an edit without its checksum
    (folder / "learner.json").write_text(json.dumps(meta))
    with pytest.raises(ll.LifelongError, match="damaged .*checksum mismatch in learner.json"):
        ll.load_learner(folder, fresh())
    ll.save_learner(folder, model, strategy)
    blob = bytearray((folder / "learner.safetensors").read_bytes())
    blob[-1] ^= 1
    (folder / "learner.safetensors").write_bytes(bytes(blob))
    with pytest.raises(ll.LifelongError, match="checksum mismatch in learner.safetensors"):
        ll.load_learner(folder, fresh())
    with pytest.raises(ll.LifelongError, match="has not been trained yet"):
        ll.save_learner(tmp_path / "x", fresh(), ll.make_strategy("ewc"))
