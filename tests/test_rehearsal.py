"""DER, DER++ and ER-ACE: their losses against hand-computed values, what their memories keep, and
that they keep class-incremental streams better than fine-tuning."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lifelong as ll
from lifelong.data import Stream, Task
from lifelong.strategies.der import logit_distance

CFG = ll.TrainConfig(optimizer="adam", lr=0.01, batch_size=16, epochs=3, device="cpu", seed=0)


def linear(weight, bias=None):
    layer = nn.Linear(len(weight[0]), len(weight), bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        if bias is not None:
            layer.bias.copy_(torch.tensor(bias))
    return layer


def stream_of(classes_per_task, num_classes):
    tasks = [Task(i, f"t{i}", torch.zeros(2, 2), torch.tensor([c[0], c[-1]]), torch.zeros(2, 2),
                  torch.tensor([c[0], c[-1]]), tuple(c)) for i, c in enumerate(classes_per_task)]
    return Stream("hand", tasks, "class", (2,), num_classes)


def test_logit_distance_is_the_squared_norm_summed_over_outputs_and_averaged_over_the_batch():
    logits, stored = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert float(logit_distance(logits, stored)) == pytest.approx(((1 + 4) + (1 + 1)) / 2)


def test_der_matches_the_stored_logits_and_derpp_adds_the_stored_labels():
    model = linear([[1.0, 0.0], [0.0, 1.0]])  # logits = inputs
    stream = stream_of([(0, 1)], 2)
    for name, beta in (("der", None), ("derpp", 0.25)):
        options = {"alpha": 0.5, "buffer_size": 4, "replay_batch_size": 2}
        strategy = ll.make_strategy(name, **options, **({"beta": beta} if beta else {}))
        strategy.setup(stream, CFG)
        x, y = torch.tensor([[1.0, 2.0], [3.0, 0.0]]), torch.tensor([1, 0])
        t = torch.zeros(2, dtype=torch.long)
        assert strategy.extra_loss(model, (x, y, t), model(x), stream[0]) == 0.0  # nothing stored
        stored = torch.tensor([[0.0, 2.0], [3.0, 1.0]])  # the logits "seen" when stored
        strategy.after_forward(model, (x, y, t), stored, stream[0])
        assert torch.equal(strategy.memory_["logits"], stored) and strategy.stored() == 2
        # both stored examples are drawn (2 of 2): ‖(1,2)−(0,2)‖² = 1, ‖(3,0)−(3,1)‖² = 1 → mean 1
        expected = 0.5 * 1.0
        if beta:  # CE of logits (1,2) for class 1 and (3,0) for class 0
            ce = (F.cross_entropy(torch.tensor([[1.0, 2.0]]), torch.tensor([1]))
                  + F.cross_entropy(torch.tensor([[3.0, 0.0]]), torch.tensor([0]))) / 2
            expected += beta * float(ce)
        loss = strategy.extra_loss(model, (x, y, t), model(x), stream[0])
        assert float(loss.detach()) == pytest.approx(expected, rel=1e-6)


def test_der_memory_is_a_bounded_reservoir_of_inputs_labels_and_logits(tiny_class_stream):
    strategy = ll.make_strategy("der", buffer_size=24)
    torch.manual_seed(0)
    model = ll.make_model("mlp", tiny_class_stream.input_shape, tiny_class_stream.num_classes, hidden=(8,))
    _, result = ll.fit(tiny_class_stream, model, strategy, CFG)
    assert strategy.stored() == 24 and set(strategy.memory_) == {"x", "y", "t", "logits"}
    assert strategy.memory_["logits"].shape == (24, tiny_class_stream.num_classes)
    assert result.memory_bytes[-1] == strategy.memory_bytes() > 0


def test_er_ace_scores_the_incoming_batch_over_its_own_classes_and_replay_over_all_seen():
    stream = stream_of([(0, 1), (2, 3), (4, 5)], 6)
    model = linear([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    strategy = ll.make_strategy("er-ace", buffer_size=4, replay_batch_size=2)
    strategy.setup(stream, CFG)
    strategy.before_task(model, stream[0])
    strategy.before_task(model, stream[1])  # classes 0–3 seen; 4, 5 not yet
    x, t = torch.tensor([[1.0, 1.0], [2.0, 0.0]]), torch.zeros(2, dtype=torch.long)
    only_two = (x, torch.tensor([2, 2]), t)
    assert float(strategy.loss(model, only_two, model(x), stream[1]).detach()) == pytest.approx(0.0, abs=1e-6)
    strategy.after_forward(model, (x, torch.tensor([0, 3]), t), model(x).detach(), stream[1])
    both = (x, torch.tensor([2, 3]), t)
    logits = model(x)
    incoming = F.cross_entropy(logits[:, 2:4], torch.tensor([0, 1]))  # classes 2, 3 only
    replayed = F.cross_entropy(logits[:, :4], torch.tensor([0, 3]))    # the stored examples, 0–3
    loss = strategy.loss(model, both, logits, stream[1])
    assert float(loss.detach()) == pytest.approx(float(incoming + replayed), rel=1e-6)


@pytest.mark.parametrize("name", ["der", "derpp", "er-ace"])
def test_keeps_a_class_incremental_stream_better_than_fine_tuning(name, tiny_class_stream):
    def acc(strategy):
        torch.manual_seed(0)
        model = ll.make_model("mlp", tiny_class_stream.input_shape, tiny_class_stream.num_classes,
                              hidden=(16,))
        return ll.fit(tiny_class_stream, model, strategy, CFG)[1].metrics["acc"]

    assert acc(ll.make_strategy(name, buffer_size=40)) > acc(ll.make_strategy("naive")) + 0.1
