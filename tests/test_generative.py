"""Generative replay (Shin et al. 2017) and its VAE generator, on tiny synthetic streams."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_arrays
from safetensors.torch import load_file, save_file

import lifelong
from lifelong.batches import iterate_batches
from lifelong.data import rotated, split
from lifelong.errors import LifelongError
from lifelong.models import make_model
from lifelong.models.vae import VAE, sample_grid_png
from lifelong.strategies.generative import GenerativeReplay
from lifelong.train import train_epoch

SMALL = {"hidden": (32,), "latent_dim": 4}
FAST = lifelong.TrainConfig(lr=1e-2, epochs=3, batch_size=16, device="cpu", eval_every_epoch=False)


def small_model(stream, seed: int = 0):
    torch.manual_seed(seed)
    return make_model("mlp", stream.input_shape, stream.num_classes, hidden=(32,))


def fit(stream, config=FAST, run_dir=None, **params):
    strategy = GenerativeReplay(**{**SMALL, **params})
    model, result = lifelong.fit(stream, small_model(stream), strategy, config, run_dir=run_dir)
    return model, strategy, result


def after_first_task(stream, config=FAST, **params):
    """A strategy that has learned task 0 (generator included) and is about to start task 1."""
    model, strategy = small_model(stream), GenerativeReplay(**{**SMALL, **params})
    strategy.setup(stream, config)
    strategy.before_task(model, stream[0])
    strategy.after_task(model, stream[0])
    strategy.tasks_learned_ = 1  # as the loop does after each task
    strategy.before_task(model, stream[1])
    return model, strategy


# ----------------------------------------------------------------------------- the generator
def test_negative_elbo_matches_hand_computed_value():
    vae = VAE((1, 1, 2), latent_dim=1, hidden=(2,))
    with torch.no_grad():
        for layers, bias in ((vae.encoder, [0.5, math.log(2)]), (vae.decoder, [0.0, math.log(3)])):
            layers[-1].weight.zero_()
            layers[-1].bias.copy_(torch.tensor(bias))
    # μ = 0.5, σ² = 2; x̂ = (sigmoid 0, sigmoid ln 3) = (1/2, 3/4) for x = (1, 0)
    recon = -math.log(0.5) - math.log(1 - 0.75)
    kl = 0.5 * (0.5**2 + 2 - math.log(2) - 1)
    loss = vae.loss(torch.tensor([[[[1.0, 0.0]]]]))
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx(recon + kl, rel=1e-6)


def test_generator_loss_falls_on_a_tiny_task(tiny_class_stream):
    strategy = GenerativeReplay(**SMALL, generator_epochs=15)
    strategy.setup(tiny_class_stream, FAST)
    strategy.before_task(small_model(tiny_class_stream), tiny_class_stream[0])
    losses = strategy.train_generator(tiny_class_stream[0], torch.device("cpu"))
    assert len(losses) == 15
    assert losses[-1] < 0.8 * losses[0]
    assert strategy.generator_loss_ == losses


@pytest.mark.parametrize("condition", ["class", "none"])
def test_samples_have_the_data_shape_and_range(tiny_class_stream, condition):
    _, strategy, _ = fit(tiny_class_stream, condition=condition)
    samples = strategy.sample(12, seed=1)
    assert samples.shape == (12, *tiny_class_stream.input_shape)
    assert samples.min() >= 0 and samples.max() <= 1
    assert samples.std() > 0  # not one constant image


def test_conditional_generator_draws_the_asked_class_old_ones_too(tiny_class_stream):
    # each blob class lights up its own row (0, 1, 3, 4); classes 0 and 1 were learned in task 0
    # and survive task 1 only through the generator's replay of its own samples
    config = FAST.__class__(**{**FAST.__dict__, "epochs": 15})
    _, strategy, _ = fit(tiny_class_stream, config=config, generator_lr=1e-2)
    for c, row in enumerate((0, 1, 3, 4)):
        profile = strategy.sample(16, torch.full((16,), c), seed=0).mean(dim=(0, 1, 3))
        assert profile[row] > 0.6
        assert torch.cat([profile[:row], profile[row + 1 :]]).max() < 0.3


def test_save_and_load_give_identical_samples(tiny_class_stream, tmp_path):
    _, strategy, _ = fit(tiny_class_stream)
    tensors, structure = strategy.state_dict()
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp_path / "state.safetensors")
    restored = GenerativeReplay(**SMALL)
    restored.load_state_dict(load_file(tmp_path / "state.safetensors"), json.loads(json.dumps(structure)))
    assert torch.equal(restored.sample(10, seed=3), strategy.sample(10, seed=3))
    assert not torch.equal(strategy.sample(10, seed=3), strategy.sample(10, seed=4))


# ----------------------------------------------------------------------------- the solver
@pytest.mark.parametrize("resample", ["step", "epoch", "task"])
def test_replayed_labels_come_from_the_previous_learner(tiny_class_stream, resample):
    model, strategy = after_first_task(tiny_class_stream, targets="hard", resample=resample)
    previous = copy.deepcopy(model)
    with torch.no_grad():  # the current learner now votes class 3 for everything
        model.net[-1].bias.copy_(torch.tensor([0.0, 0.0, 0.0, 100.0]))
    x, t, labels = strategy.replay(model, 64)
    old = previous(x)[:, :2]  # the previous learner, on the classes it had seen (0 and 1)
    assert torch.equal(labels, old.argmax(dim=1))
    assert set(labels.tolist()) <= {0, 1}


def test_soft_targets_are_the_previous_learners_tempered_softmax(tiny_class_stream):
    model, strategy = after_first_task(tiny_class_stream, targets="soft", temperature=3.0)
    x, _, targets = strategy.replay(model, 32)
    expected = torch.softmax(model(x)[:, :2] / 3.0, dim=1)
    assert torch.allclose(targets[:, :2], expected, atol=1e-6)
    assert torch.all(targets[:, 2:] == 0)  # classes not seen yet get probability 0


def test_distillation_loss_matches_hand_computed_value():
    strategy = GenerativeReplay(targets="soft", temperature=2.0)
    logits, target = torch.tensor([[1.0, 2.0, 0.0]]), torch.tensor([[0.2, 0.8, 0.0]])
    log_z = math.log(math.exp(0.5) + math.exp(1.0) + 1.0)
    expected = -(2.0**2) * (0.2 * (0.5 - log_z) + 0.8 * (1.0 - log_z))
    assert strategy.replay_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("weight, replay_size, expected_r", [(None, None, 0.5), (0.8, 5, 0.8)])
def test_replayed_share_of_each_batch_follows_the_options(tiny_class_stream, weight, replay_size, expected_r):
    model, strategy = after_first_task(
        tiny_class_stream, targets="hard", current_weight=weight, replay_size=replay_size
    )
    task = tiny_class_stream[1]
    x, y = task.x_train[:8], task.y_train[:8]
    batch = (x, y, task.train_ids()[:8])
    seen = []
    replay = strategy.replay
    strategy.replay = lambda m, n: seen.append(n) or replay(m, n)
    strategy._rng.manual_seed(7)
    total = strategy.loss(model, batch, model(x), task)
    assert seen == [replay_size or 8]
    strategy._rng.manual_seed(7)  # the same draws again, to rebuild the loss by hand
    xr, _, labels = replay(model, seen[0])
    current, replayed = F.cross_entropy(model(x), y), F.cross_entropy(model(xr), labels)
    assert strategy.current_share() == expected_r
    assert total.item() == pytest.approx((expected_r * current + (1 - expected_r) * replayed).item())


def test_epoch_seen_repeats_the_task_once_per_task_seen(tiny_class_stream):
    task = tiny_class_stream[1]
    _, per_task = after_first_task(tiny_class_stream, epoch="task")
    _, per_seen = after_first_task(tiny_class_stream, epoch="seen")
    assert per_task.epoch_repeats(task) == 1 and per_seen.epoch_repeats(task) == 2  # 2 seen
    assert torch.equal(per_seen.train_data(task)[0], task.x_train)  # indices repeat, not data
    first = GenerativeReplay(**SMALL, epoch="seen")
    first.setup(tiny_class_stream, FAST)
    assert first.epoch_repeats(tiny_class_stream[0]) == 1


def test_repeated_epoch_gives_the_batches_of_the_repeated_data():
    x, y = torch.arange(10.0).reshape(5, 2), torch.arange(5)
    data = (x, y, torch.zeros(5, dtype=torch.long))
    copied = (x.repeat(3, 1), y.repeat(3), torch.zeros(15, dtype=torch.long))
    ours = list(iterate_batches(data, 4, torch.Generator().manual_seed(3), repeats=3))
    reference = list(iterate_batches(copied, 4, torch.Generator().manual_seed(3)))
    assert len(ours) == len(reference) == 4
    for a, b in zip(ours, reference):
        assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert sorted(torch.cat([b[1] for b in ours]).tolist()) == sorted(list(range(5)) * 3)


def test_first_task_trains_on_current_data_only(tiny_class_stream):
    model, strategy = small_model(tiny_class_stream), GenerativeReplay(**SMALL)
    strategy.setup(tiny_class_stream, FAST)
    task = tiny_class_stream[0]
    strategy.before_task(model, task)
    batch = (task.x_train[:8], task.y_train[:8], task.train_ids()[:8])
    assert strategy.loss(model, batch, model(batch[0]), task).item() == pytest.approx(
        F.cross_entropy(model(batch[0]), batch[1]).item()
    )


# ----------------------------------------------------------------------------- whole runs
def test_old_classes_survive_in_class_incremental(tiny_class_stream):
    config = FAST.__class__(**{**FAST.__dict__, "epochs": 30})
    _, _, replayed = fit(tiny_class_stream, config=config)
    _, naive = lifelong.fit(
        tiny_class_stream, small_model(tiny_class_stream), lifelong.make_strategy("naive"), config
    )
    assert naive.accuracy_matrix[-1][0] < 0.2  # plain fine-tuning forgets digits of task 0
    assert replayed.accuracy_matrix[-1][0] > 0.8
    assert replayed.accuracy_matrix[-1][1] > 0.8


@pytest.mark.parametrize("stream_name", ["tiny_task_stream", "tiny_domain_stream"])
def test_runs_on_task_and_domain_streams(stream_name, request, tmp_path):
    stream = request.getfixturevalue(stream_name)
    _, strategy, result = fit(stream, run_dir=tmp_path)
    assert len(result.accuracy_matrix) == len(stream)
    assert strategy.condition_ == ("task" if stream.task_aware else "class")
    pngs = sorted(p.name for p in tmp_path.glob("samples_task*.png"))
    assert pngs == [f"samples_task{i}.png" for i in range(len(stream))]
    assert (tmp_path / "samples_task0.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_memory_is_the_generator_and_previous_learner(tiny_class_stream):
    model, strategy, result = fit(tiny_class_stream)
    vae = VAE(tiny_class_stream.input_shape, num_conditions=4, **SMALL)
    expected = 4 * (sum(p.numel() for p in vae.parameters()) + sum(p.numel() for p in model.parameters()))
    assert result.memory_bytes == [expected, expected]


@pytest.mark.parametrize("options", [{}, {"resample": "epoch"}, {"resample": "task", "epoch": "task"}])
def test_same_seed_same_numbers(tiny_domain_stream, options):
    _, first, a = fit(tiny_domain_stream, targets="soft", **options)
    _, second, b = fit(tiny_domain_stream, targets="soft", **options)
    assert a.accuracy_matrix == b.accuracy_matrix
    assert all(torch.equal(first.generator_[k], second.generator_[k]) for k in first.generator_)
    assert torch.equal(first.sample(5, seed=0), second.sample(5, seed=0))


def test_made_by_name_with_options():
    strategy = lifelong.make_strategy("generative-replay", targets="soft", replay_size=32)
    assert isinstance(strategy, GenerativeReplay)
    assert strategy.hyperparameters()["replay_size"] == 32


@pytest.mark.parametrize(
    "options",
    [
        {"targets": "argmax"},
        {"temperature": 0},
        {"condition": "x"},
        {"current_weight": 1.5},
        {"replay_size": 0},
        {"hidden": ()},
        {"generator_lr": -1.0},
        {"generator_epochs": 2.5},
        {"temperature": "hot"},
        {"latent_dim": True},
        {"hidden": [400, "x"]},
        {"hidden": [0]},
        {"epoch": "all"},
        {"resample": "batch"},
        {"generator_after_last": "no"},
        {"generator_epoch": "joint"},
    ],
)
def test_bad_options_are_one_line_errors(options):
    with pytest.raises(LifelongError):
        GenerativeReplay(**options)


def test_task_incremental_needs_a_conditional_generator(tiny_task_stream):
    with pytest.raises(LifelongError, match="task id"):
        GenerativeReplay(condition="none").setup(tiny_task_stream, FAST)
    shared = rotated(angles=(0, 90), arrays=tiny_arrays(), scenario="task")
    with pytest.raises(LifelongError, match="condition='task'"):
        GenerativeReplay(condition="class").setup(shared, FAST)


@pytest.mark.parametrize("shape", [(5, 1, 6, 6), (4, 3, 5, 5), (3, 7, 7), (5, 12)])
def test_sample_grid_renders_images_and_vectors(shape):
    import io

    from matplotlib.image import imread

    png = sample_grid_png(torch.rand(shape), per_row=4, labels=None, title="t")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    picture = imread(io.BytesIO(png), format="png")
    assert picture.ndim == 3 and min(picture.shape[:2]) > 20


@pytest.mark.parametrize("options", [{}, {"resample": "epoch", "generator_after_last": False}])
def test_interrupted_run_resumes_to_identical_numbers_and_samples(tmp_path, options):
    from conftest import Interrupt, idx_folder, stop_at

    from lifelong import checkpoint

    source = idx_folder(tmp_path / "data", tiny_arrays())
    cfg = lifelong.RunConfig(
        benchmark="split-mnist",
        strategy="generative-replay",
        model_options={"hidden": [16]},
        benchmark_options={"source": str(source), "classes_per_task": 1, "scenario": "class"},
        strategy_options={"hidden": [32], "latent_dim": 4, "targets": "soft", **options},
        train=lifelong.TrainConfig(epochs=2, lr=0.01, batch_size=16, device="cpu"),
    )
    whole = lifelong.run(cfg, out=tmp_path / "whole")
    with pytest.raises(Interrupt):
        lifelong.run(cfg, out=tmp_path / "cut", progress=stop_at(2))
    run_dir = tmp_path / "cut" / cfg.run_id()
    assert checkpoint.has_checkpoint(run_dir)
    resumed = lifelong.run(cfg, out=tmp_path / "cut")
    assert resumed.extra["resumed_after_task"] == 2
    assert resumed.accuracy_matrix == whole.accuracy_matrix
    grids = 4 if not options else 3  # none after the last task when its generator is skipped
    assert len(list((tmp_path / "whole" / cfg.run_id()).glob("samples_task*.png"))) == grids
    for task in range(grids):  # the grids after every task, before and after the interruption
        name = f"samples_task{task}.png"
        assert (run_dir / name).read_bytes() == (tmp_path / "whole" / cfg.run_id() / name).read_bytes()


# ----------------------------------------------------------------------------- replay sets
def count_draws(monkeypatch):
    """Record the size of every ``VAE.sample`` call and every previous-learner labelling."""
    from lifelong.strategies import generative

    draws, labels = [], []
    sample, outputs_of = VAE.sample, generative.outputs_of
    monkeypatch.setattr(VAE, "sample", lambda self, n, *a: draws.append(n) or sample(self, n, *a))
    monkeypatch.setattr(generative, "outputs_of",
                        lambda m, w, x: labels.append(len(x)) or outputs_of(m, w, x))
    return draws, labels


STEPS = [24] * 3 + [8]  # the batches of an epoch over 80 inputs
DRAWS = {"step": STEPS * 3, "epoch": [80] * 3, "task": [80]}


@pytest.mark.parametrize("resample", ["step", "epoch", "task"])
def test_replay_is_drawn_per_step_epoch_or_task(tiny_class_stream, monkeypatch, resample):
    # task 1 of the tiny stream: 80 training inputs, batch 24 → 4 steps an epoch (the last of 8),
    # 3 epochs for the learner and for the generator; each draws its replay per step, once per
    # epoch (an epoch's 80 rows) or once per task (the same 80 rows every epoch, reshuffled)
    task = tiny_class_stream[1]
    assert task.x_train.shape[0] == 80
    config = FAST.__class__(**{**FAST.__dict__, "batch_size": 24})
    model, strategy = after_first_task(tiny_class_stream, config, resample=resample, epoch="task")
    draws, labels = count_draws(monkeypatch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(0)
    replayed = []
    replay = strategy.replay
    strategy.replay = lambda m, n: (lambda b: replayed.append(b[0]) or b)(replay(m, n))
    for _ in range(3):
        train_epoch(model, strategy, optimizer, task, strategy.train_data(task), 24, gen)
    assert draws == labels == DRAWS[resample]
    epochs = [torch.cat(replayed[i:i + 4]) for i in (0, 4, 8)]
    assert [len(e) for e in epochs] == [80] * 3  # every batch joined by as many replayed rows
    if resample != "step":  # an epoch's replayed rows are its replay set, each row once
        sets = [e.flatten(1).sum(1).sort().values for e in epochs]
        assert torch.equal(sets[0], sets[1]) == (resample == "task")  # the task's set again…
        assert not torch.equal(epochs[0], epochs[1])  # …in a new order
    draws.clear()
    strategy.after_task(model, task)  # the generator replays its own samples the same way
    assert draws == DRAWS[resample]


def test_replay_size_sets_the_rows_of_an_epochs_replay_set(tiny_class_stream):
    _, strategy = after_first_task(tiny_class_stream, resample="epoch", replay_size=5, epoch="seen")
    # task 1 with epoch="seen": 2 × 80 rows an epoch in 10 batches of 16, each joined by 5 replayed
    task = tiny_class_stream[1]
    assert strategy.epoch_replay_rows(task, strategy.epoch_repeats(task)) == 10 * 5


def test_generator_after_last_false_skips_only_the_last_tasks_generator(tiny_class_stream, monkeypatch):
    trained = []
    train_generator = GenerativeReplay.train_generator
    monkeypatch.setattr(GenerativeReplay, "train_generator", lambda self, task, device:
                        trained.append(task.id) or train_generator(self, task, device))
    model, skipped, a = fit(tiny_class_stream, generator_after_last=False)
    assert trained == [0]
    trained.clear()
    _, full, b = fit(tiny_class_stream)
    assert trained == [0, 1]
    assert a.accuracy_matrix == b.accuracy_matrix  # the learner never replays the last generator
    assert not all(torch.equal(skipped.generator_[k], full.generator_[k]) for k in full.generator_)
    assert skipped.artifacts(model, tiny_class_stream[1]) == {}
    longer = split(classes_per_task=1, arrays=tiny_arrays(), scenario="class")
    with pytest.raises(LifelongError, match="generator_after_last=true"):
        skipped.extend(longer, FAST)


def test_generator_epoch_sets_the_generators_passes_apart_from_the_learners(tiny_class_stream, monkeypatch):
    # learner: epoch="seen" passes twice over task 1's 80 inputs (both tasks seen); the generator
    # with generator_epoch="task" once, so it draws its replay for 4 batches of 24 per epoch
    config = FAST.__class__(**{**FAST.__dict__, "batch_size": 24})
    model, strategy = after_first_task(tiny_class_stream, config, epoch="seen", generator_epoch="task")
    task = tiny_class_stream[1]
    assert (strategy.epoch_repeats(task), strategy.generator_repeats()) == (2, 1)
    draws, _ = count_draws(monkeypatch)
    strategy.after_task(model, task)
    assert draws == STEPS * 3
    _, same = after_first_task(tiny_class_stream, config, epoch="seen")
    assert same.generator_repeats() == 2  # by default as the learner's
