"""The registry contract: every registered strategy, on tiny streams of each scenario it supports.

A new strategy file gets these checks for free: the matrix has the right shape, accuracies lie
in [0, 1], the same seed gives the same numbers, and its learned state survives a round trip
through safetensors + JSON (no pickle).
"""

import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

import lifelong as ll
from lifelong.registry import STRATEGIES
from lifelong.strategies import load_all

load_all()
NAMES = STRATEGIES.names()
FAST = ll.TrainConfig(optimizer="adam", lr=0.01, batch_size=32, epochs=1, device="cpu", seed=3)


def scenarios(name):
    cls = STRATEGIES.get(name)
    return ["task"] if getattr(cls, "needs_task_identity", False) else ["domain", "class", "task"]


CASES = [(name, scenario) for name in NAMES for scenario in scenarios(name)]


@pytest.fixture
def streams(tiny_domain_stream, tiny_class_stream, tiny_task_stream):
    return {"domain": tiny_domain_stream, "class": tiny_class_stream, "task": tiny_task_stream}


def run_once(name, stream):
    torch.manual_seed(FAST.seed)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(16,))
    strategy = ll.make_strategy(name)
    _, result = ll.fit(stream, model, strategy, FAST)
    return strategy, result


def test_the_reference_strategies_are_registered():
    assert {"naive", "joint"} <= set(NAMES)


@pytest.mark.parametrize("name, scenario", CASES)
def test_strategy_contract(name, scenario, streams, tmp_path):
    stream = streams[scenario]
    strategy, result = run_once(name, stream)
    T = len(stream)
    assert [len(row) for row in result.accuracy_matrix] == [T] * T
    assert all(0.0 <= a <= 1.0 for row in result.accuracy_matrix for a in row)
    assert all(math.isfinite(v) for v in result.metrics.values())
    assert all(isinstance(b, int) and b >= 0 for b in result.memory_bytes)

    _, again = run_once(name, stream)
    assert again.accuracy_matrix == result.accuracy_matrix, "same seed must give the same matrix"

    tensors, structure = strategy.state_dict()
    path = tmp_path / "state.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    text = json.dumps(structure)
    fresh = ll.make_strategy(name)
    fresh.load_state_dict(load_file(str(path)), json.loads(text))
    tensors2, structure2 = fresh.state_dict()
    assert structure2 == structure
    assert tensors2.keys() == tensors.keys()
    assert all(torch.equal(tensors[k], tensors2[k]) for k in tensors)


def test_unknown_strategy_and_bad_hyperparameter_are_one_line_errors():
    with pytest.raises(ll.LifelongError, match="unknown strategy 'ewcc'; known: .*naive"):
        ll.make_strategy("ewcc")
    with pytest.raises(ll.LifelongError, match="strategy 'naive' has no hyper-parameter"):
        ll.make_strategy("naive", lam=3)


@pytest.mark.parametrize("name", NAMES)
def test_the_registry_names_a_strategy_and_its_constructor_says_its_hyperparameters(name):
    import inspect

    strategy = ll.make_strategy(name)
    assert strategy.name == name  # one place: the registry key, no class attribute to forget
    params = [k for k, p in inspect.signature(type(strategy).__init__).parameters.items()
              if k != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    hyper = strategy.hyperparameters()
    assert list(hyper) == params
    assert ll.make_strategy(name, **hyper).hyperparameters() == hyper
    strategy.helper = 3  # a helper attribute is not a hyper-parameter: the run id does not change
    assert strategy.hyperparameters() == hyper


def test_a_constructor_parameter_without_its_attribute_is_named():
    class Forgetful(ll.Strategy):
        def __init__(self, lam: float = 1.0) -> None:
            self.strength = lam

    with pytest.raises(TypeError, match="keeps no attribute 'lam'"):
        Forgetful().hyperparameters()
