"""Every strategy with the BatchNorm ResNet on CIFAR-shaped images, and BatchNorm's running
statistics: training forwards update them; statistics computations (importances, memory
gradients, teachers' outputs, exemplar features) leave them as they were."""

import pytest
import torch
from torch import nn

import lifelong as ll
from lifelong.models.modes import eval_mode, outputs_of, statistics_kept
from lifelong.registry import STRATEGIES
from lifelong.strategies import load_all
from lifelong.strategies.gdumb import reinitialise

load_all()
CFG = ll.TrainConfig(optimizer="sgd", lr=0.01, batch_size=16, epochs=1, device="cpu", seed=0,
                     eval_every_epoch=False)
CHAIN = r"layer 'bn1' is a BatchNorm2d\. Use the mlp or cnn model.*\(not resnet18-reduced or resnet18"
REFUSED = {
    "gem": r"cannot run the BatchNorm2d layer 'bn1'.*pass memory_grads='per_task'",
    "kfac": r"'conv1.weight' belongs to another layer; use ewc for this model",
    "pnn": CHAIN, "packnet": CHAIN, "cpg": CHAIN,
}
HOOKS = ("before_task", "after_forward", "read_gradient", "penalty", "after_backward", "after_step",
         "after_task")
RETRAINS = {"gdumb"}  # trains inside after_task (from scratch, on its memory): the stats move there


def cifar_stream(scenario: str):
    """2 tasks × 2 classes of random 3×32×32 images in [0, 1]: 16 train, 8 test per class."""
    g = torch.Generator().manual_seed(0)
    y_train, y_test = torch.arange(4).repeat_interleave(16), torch.arange(4).repeat_interleave(8)
    x_train, x_test = torch.rand(64, 3, 32, 32, generator=g), torch.rand(32, 3, 32, 32, generator=g)
    return ll.make_benchmark("split-mnist", arrays=(x_train, y_train, x_test, y_test), scenario=scenario)


def resnet(stream, nf: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return ll.make_model("resnet18-reduced", stream.input_shape, stream.num_classes, nf=nf)


def statistics(model: nn.Module) -> list[torch.Tensor]:
    return [b.detach().clone() for b in model.buffers()]


def unchanged(before: list[torch.Tensor], model: nn.Module) -> bool:
    return all(torch.equal(a, b) for a, b in zip(before, model.buffers()))


def watch(strategy, hooks, calls: dict[str, int]) -> None:
    """Make each of the strategy's ``hooks`` fail if it changes the model's buffers."""
    for hook in hooks:
        original = getattr(strategy, hook)

        def checked(model, *args, _original=original, _hook=hook):
            before = statistics(model)
            out = _original(model, *args)
            assert unchanged(before, model), f"{strategy.name}.{_hook} changed BatchNorm's running statistics"
            calls[_hook] = calls.get(_hook, 0) + 1
            return out

        setattr(strategy, hook, checked)


def scenarios(name):
    return ["task"] if getattr(STRATEGIES.get(name), "needs_task_identity", False) else ["class", "task"]


CASES = [(name, s) for name in STRATEGIES.names() for s in scenarios(name)]
CASES += [("gem-per-task", "class")]


@pytest.mark.parametrize("name, scenario", CASES)
def test_every_strategy_trains_the_resnet_on_cifar_shaped_images_or_refuses_in_one_line(name, scenario):
    stream = cifar_stream(scenario)
    model = resnet(stream)
    if name in REFUSED:
        with pytest.raises(ll.LifelongError, match=REFUSED[name]) as excinfo:
            ll.fit(stream, model, ll.make_strategy(name), CFG)
        assert "\n" not in str(excinfo.value)
        return
    strategy = ll.make_strategy("gem", memory_grads="per_task") if name == "gem-per-task" \
        else ll.make_strategy(name)
    calls: dict[str, int] = {}
    watch(strategy, [h for h in HOOKS if not (h == "after_task" and name in RETRAINS)], calls)
    initial = statistics(model)
    model, result = ll.fit(stream, model, strategy, CFG)
    assert [len(row) for row in result.accuracy_matrix] == [2, 2]
    assert all(0.0 <= a <= 1.0 for row in result.accuracy_matrix for a in row)
    assert calls["after_backward"] > 0 and calls.get("after_task", 2) == 2
    moved = not torch.equal(initial[0], model.bn1.running_mean)
    assert moved, "training forwards update the running statistics"


@pytest.mark.parametrize("name, options", [("pnn", {}), ("packnet", {"retrain_epochs": 1}),
                                           ("cpg", {"compact_epochs": 1, "prune_steps": 1})])
def test_the_chain_methods_take_the_cnn_on_cifar_shaped_images(name, options):
    stream = cifar_stream("task")
    torch.manual_seed(0)
    model = ll.make_model("cnn", stream.input_shape, stream.num_classes, channels=(4, 8), hidden=16)
    strategy = ll.make_strategy(name, **options)
    _, result = ll.fit(stream, model, strategy, CFG)
    assert result.accuracy_matrix[1][0] == result.accuracy_matrix[0][0]  # zero forgetting
    if name != "pnn":  # the convolutions' weights are split among the tasks too
        owner = strategy.owner_["features.3.weight"]
        assert owner.shape == (8, 4, 3, 3) and {1, 2} <= set(owner.unique().tolist())


def test_the_default_width_trains_too():
    stream = cifar_stream("class")
    model, result = ll.fit(stream, resnet(stream, nf=20), "der", CFG)
    assert sum(p.numel() for p in model.parameters()) == 1_094_750 - 6 * 161  # 4 classes, not 10
    assert len(result.accuracy_matrix) == 2


def test_eval_mode_gives_back_each_submodules_own_mode():
    model = resnet(cifar_stream("class"))
    model.train()
    model.bn1.eval()  # a BatchNorm the user keeps frozen
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert model.training and model.layer1.training and not model.bn1.training


def test_statistics_kept_puts_the_running_statistics_back_even_on_error():
    model = resnet(cifar_stream("class")).train()
    before = statistics(model)
    with pytest.raises(RuntimeError), statistics_kept(model):
        model(torch.rand(4, 3, 32, 32))  # batch statistics: the running ones move inside
        assert not torch.equal(before[0], model.bn1.running_mean)
        raise RuntimeError
    assert unchanged(before, model)


def test_a_teacher_answers_with_its_own_running_statistics_and_leaves_the_learners():
    stream = cifar_stream("class")
    model = resnet(stream).train()
    strategy = ll.make_strategy("lwf")
    strategy.setup(stream, CFG)
    model(stream[0].x_train)  # running statistics away from their initial values
    strategy.after_task(model, stream[0])
    teacher = resnet(stream).eval()
    teacher.load_state_dict(model.state_dict())
    model(stream[1].x_train)  # the learner's statistics move on; the teacher's stay
    before = statistics(model)
    batch = (stream[1].x_train[:8], stream[1].y_train[:8], torch.zeros(8, dtype=torch.long))
    outputs = model(batch[0])
    after_forward = statistics(model)
    strategy.extra_loss(model, batch, outputs, stream[1])
    assert unchanged(after_forward, model)  # the teacher's answer left the learner's statistics
    assert not unchanged(before, model)  # which the learner's own forward had moved
    with torch.no_grad():
        expected = teacher(batch[0])
    assert torch.allclose(outputs_of(model, strategy.old_model_, batch[0]), expected, atol=1e-5)
    with torch.no_grad(), eval_mode(model):  # the same weights with the learner's statistics differ
        assert not torch.allclose(model(batch[0]), expected, atol=1e-3)
    assert model.training


def test_gdumb_retrains_from_scratch_with_fresh_running_statistics():
    stream = cifar_stream("class")
    model = resnet(stream).train()
    model(stream[0].x_train)
    assert int(model.bn1.num_batches_tracked) == 1
    reinitialise(model, seed=5)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert torch.equal(module.running_mean, torch.zeros_like(module.running_mean))
            assert torch.equal(module.running_var, torch.ones_like(module.running_var))
            assert int(module.num_batches_tracked) == 0
