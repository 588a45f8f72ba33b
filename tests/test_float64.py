"""Every importance estimator (each strategy with a penalty, and each of its Fisher variants) on a
float64 model: a new penalty method is covered by its registration alone."""

from __future__ import annotations

import copy
import inspect
import itertools
import math

import pytest
import torch

import lifelong as ll
from lifelong.data import Stream, Task
from lifelong.registry import STRATEGIES
from lifelong.strategies import Strategy
from lifelong.strategies.base import penalty_value
from lifelong.strategies.ewc import FISHER_KINDS
from lifelong.strategies.kfac import FORMS

FAST = ll.TrainConfig(optimizer="adam", lr=0.01, batch_size=32, epochs=1, device="cpu", seed=3)


def penalty_methods() -> list[str]:
    """The registered strategies that add a penalty: every importance estimator (and kfac)."""
    return [n for n in STRATEGIES.names() if getattr(STRATEGIES.get(n), "penalty", None) not in
            (None, Strategy.penalty)]


def variants(name: str) -> list[dict]:
    """Defaults, and every Fisher kind × per-sample choice × form where the method has those options."""
    params = inspect.signature(STRATEGIES.get(name)).parameters
    fisher = FISHER_KINDS if "fisher" in params else (None,)
    per_sample = (True, False) if "per_sample" in params else (None,)
    form = FORMS if "form" in params else (None,)
    return [{k: v for k, v in (("fisher", f), ("per_sample", p), ("form", m)) if v is not None}
            for f, p, m in itertools.product(fisher, per_sample, form)]


CASES = [pytest.param(n, o, id="-".join([n, *map(str, o.values())])) for n in penalty_methods()
         for o in variants(n)]


def as_float64(stream: Stream) -> Stream:
    tasks = [Task(t.id, t.name, t.x_train.double(), t.y_train, t.x_test.double(), t.y_test, t.classes)
             for t in stream]
    return Stream(stream.name, tasks, stream.scenario, stream.input_shape, stream.num_classes)


def test_the_importance_estimators_are_found():
    assert {"l2", "ewc", "online-ewc", "mas", "si", "rwalk", "scp", "kfac"} <= set(penalty_methods())


def moved(model: torch.nn.Module, step: float = 0.05) -> torch.nn.Module:
    """A copy of ``model`` with every parameter moved by ``step`` (away from any anchor)."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(step)
    return other


def check_penalty(strategy, model) -> float:
    penalty = penalty_value(strategy.penalty(model))
    assert torch.is_tensor(penalty) and penalty.dtype == torch.float64
    assert math.isfinite(penalty.item())
    return penalty.item()


@pytest.mark.parametrize("name, options", CASES)
def test_importance_estimators_run_on_a_float64_model(name, options, tiny_task_stream):
    stream = as_float64(tiny_task_stream)
    first = Stream(stream.name, stream.tasks[:1], stream.scenario, stream.input_shape, stream.num_classes)
    torch.manual_seed(FAST.seed)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(8,)).double()
    strategy = ll.make_strategy(name, **options)
    model, _ = ll.fit(first, model, strategy, FAST)
    assert check_penalty(strategy, moved(model)) > 0   # task 1's importance and anchor
    if hasattr(strategy, "estimate"):                   # the estimator's own Ω, before any merge
        omega = strategy.estimate(model, stream[0])
        assert all(w.dtype == torch.float64 and torch.isfinite(w).all() for w in omega.values())
        assert all(w.dtype == torch.float64 for w in strategy.omega_.values())  # stored as the weights
    model, result = ll.fit(stream, model, strategy, FAST, first_task=1)
    assert all(math.isfinite(a) for row in result.accuracy_matrix for a in row)
    assert check_penalty(strategy, moved(model)) > 0
    tensors, _ = strategy.state_dict()  # learned state: finite floats usable with float64 weights
    assert all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point())
