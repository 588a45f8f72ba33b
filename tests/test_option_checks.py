"""A bad hyper-parameter or model option is a one-line LifelongError naming it, at construction."""

import inspect
import math

import pytest

import lifelong as ll
from lifelong.registry import STRATEGIES
from lifelong.strategies import load_all

INF, NAN = math.inf, math.nan


def refused(build, option):
    with pytest.raises(ll.LifelongError, match=rf"\b{option}\b") as info:
        build()
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("name, option, value", [
    ("ewc", "lam", INF), ("lwf", "lam", NAN), ("gem", "margin", NAN), ("gem", "eps", NAN),
    ("si", "xi", INF), ("lwf", "temperature", INF), ("generative-replay", "generator_lr", INF),
    ("cpg", "mask_init", INF), ("cpg", "prune_steps", 0), ("gem", "margin", "x"), ("cpg", "goal", "x"),
    ("pnn", "adapter_ratio", "x"), ("rwalk", "epsilon", INF), ("online-ewc", "gamma", NAN),
    ("ewc", "lam", True), ("agem", "ref_batch_size", 2.0), ("cpg", "grow", INF),
])
def test_bad_hyperparameters_from_the_audit(name, option, value):
    message = refused(lambda: ll.make_strategy(name, **{option: value}), option)
    assert "not supported between" not in message


def _options():
    load_all()
    for name in STRATEGIES.names():
        for option, p in inspect.signature(STRATEGIES.get(name)).parameters.items():
            yield name, option, "x"  # neither a number nor an allowed word
            if isinstance(p.default, (int, float)) and not isinstance(p.default, bool):
                yield name, option, NAN
                yield name, option, INF


@pytest.mark.parametrize("name, option, value", list(_options()))
def test_every_hyperparameter_of_every_strategy_is_checked(name, option, value):
    refused(lambda: ll.make_strategy(name, **{option: value}), option)


@pytest.mark.parametrize("model, shape, classes, options, option", [
    ("mlp", (1, 28, 28), 10, {"hidden": [-1]}, "hidden"),
    ("mlp", (1, 28, 28), 10, {"hidden": "abc"}, "hidden"),
    ("cnn", (1, 28, 28), 10, {"hidden": -1}, "hidden"),
    ("cnn", (1, 28, 28), 10, {"hidden": "abc"}, "hidden"),
    ("cnn", (1, 28, 28), 10, {"channels": [0]}, "channels"),
    ("cnn", (1, 28, 28), 10, {"channels": [8] * 6}, "channels"),
    ("cnn", (1, 2, 2), 10, {}, "channels"),
    ("mlp", (1, 28, 28), -1, {}, "num_classes"),
    ("cnn", (1, 28, 28), 0, {}, "num_classes"),
    ("mlp", (0,), 10, {}, "input_shape"),
    ("cnn", (1, 0, 28), 10, {}, "input_shape"),
])
def test_bad_model_options(model, shape, classes, options, option):
    refused(lambda: ll.make_model(model, shape, classes, **options), option)


def test_cnn_says_how_many_blocks_fit():
    assert "at most 4" in refused(lambda: ll.make_model("cnn", (1, 28, 28), 10, channels=[8] * 6), "channels")
    ll.make_model("cnn", (1, 28, 28), 10, channels=[8] * 4)  # 28 → 14 → 7 → 3 → 1
