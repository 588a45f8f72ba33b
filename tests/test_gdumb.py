"""GDumb (Prabhu et al. 2020): the greedy class-balanced sampler by hand, the model retrained from
scratch on the memory alone, and better than plain fine-tuning on a class-incremental stream."""

import torch

import lifelong as ll
from lifelong.strategies.gdumb import GDumb, gdumb_add, reinitialise
from lifelong.train import train_function

CFG = ll.TrainConfig(optimizer="adam", lr=0.01, batch_size=16, epochs=3, device="cpu", seed=0)


def records(labels):
    y = torch.tensor(labels)
    x = torch.arange(len(labels), dtype=torch.float32).unsqueeze(1)
    return {"x": x, "y": y, "t": torch.zeros_like(y)}


def test_the_greedy_sampler_keeps_every_new_class_and_takes_room_from_the_largest():
    g = torch.Generator().manual_seed(0)
    # k = 4. Rows 0-3 (class 0) fill it; row 4 (class 0) is at the share k/|Y| = 4: skipped.
    # Row 5 (class 1, share 2): full, class 0 is the largest -> one random class-0 row out.
    # Row 6 (class 1 has 1 < 2): class 0 (3) loses another. Row 7 (class 2, share 4/3): classes
    # 0 and 1 tie at 2 -> the smallest label, 0, loses one. Left: one class-0 row, rows 5, 6, 7.
    memory = gdumb_add({}, records([0, 0, 0, 0, 0, 1, 1, 2]), 4, g)
    kept = sorted(memory["x"].squeeze(1).long().tolist())
    assert kept[1:] == [5, 6, 7] and kept[0] in (0, 1, 2, 3)
    assert torch.bincount(memory["y"]).tolist() == [1, 2, 1]


def test_the_sampler_goes_on_from_a_stored_memory_as_over_one_stream():
    stream = records([0, 1, 0, 1, 2, 2, 2, 0, 3, 3, 1])
    whole = gdumb_add({}, stream, 6, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    first = gdumb_add({}, {k: v[:5] for k, v in stream.items()}, 6, g)
    parts = gdumb_add(first, {k: v[5:] for k, v in stream.items()}, 6, g)
    assert torch.equal(whole["x"], parts["x"])
    # k = 6: rows 0-5 fill it (0:2, 1:2, 2:2); rows 6, 7 are at their class's share (6/3);
    # row 8 (class 3, share 1.5) evicts from class 0 (ties: smallest label), row 9 (class 3 has 1)
    # from class 1, row 10 (class 1 has 1) from class 2: counts 1, 2, 1, 2
    assert torch.bincount(whole["y"]).tolist() == [1, 2, 1, 2]


def test_below_its_share_and_not_full_an_example_is_simply_added():
    memory = gdumb_add({}, records([3, 1, 2]), 10, torch.Generator())
    assert memory["x"].squeeze(1).tolist() == [0, 1, 2]


def test_the_model_is_retrained_from_scratch_on_the_memory_alone(tiny_class_stream):
    task = tiny_class_stream.tasks[1]
    weights = []
    for seed in (0, 1):  # two models that learned different things, same memory
        torch.manual_seed(seed)
        stream = tiny_class_stream
        model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(8,))
        strategy = GDumb(buffer_size=30, epochs=2)
        strategy.setup(tiny_class_stream, CFG)
        strategy.memory_ = gdumb_add({}, {"x": task.x_train, "y": task.y_train,
                                          "t": torch.ones_like(task.y_train)}, 30, torch.Generator())
        stored = {k: v.clone() for k, v in strategy.memory_.items()}
        strategy.after_task(model, tiny_class_stream.tasks[0], train_function(model, strategy, task, CFG))
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        # task 0's 80 examples were offered: classes 0 and 1 join, each class near 30/4
        counts = torch.bincount(strategy.memory_["y"])
        assert counts.sum() == 30 and counts.max() - counts.min() <= 1
        assert not torch.equal(strategy.memory_["x"], stored["x"])
    assert torch.equal(weights[0], weights[1])


def test_reinitialising_is_seeded_and_leaves_the_global_rng_alone():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    state = torch.random.get_rng_state()
    reinitialise(model, 7)
    first = [p.clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    reinitialise(model, 7)
    assert all(torch.equal(a, b) for a, b in zip(first, model.parameters()))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_the_loop_takes_no_step_on_the_stream(tiny_class_stream):
    strategy = GDumb(buffer_size=20)
    strategy.setup(tiny_class_stream, CFG)
    x, y, t = strategy.train_data(tiny_class_stream.tasks[0])
    assert x.shape[0] == y.shape[0] == t.shape[0] == 0


def acc(name, stream, **options):
    torch.manual_seed(0)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(32,))
    _, result = ll.fit(stream, model, ll.make_strategy(name, **options), CFG)
    return result.metrics["acc"], result


def test_gdumb_beats_naive_on_a_class_incremental_stream(tiny_class_stream):
    naive, _ = acc("naive", tiny_class_stream)
    gdumb, result = acc("gdumb", tiny_class_stream, buffer_size=40, epochs=10)
    assert gdumb > naive + 0.2, (gdumb, naive)
    assert result.memory_bytes[-1] >= 40 * 36 * 4  # the 40 stored 6x6 inputs, at least
