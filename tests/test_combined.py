"""Combinations of strategies (``ewc+replay``): every pair trains or is refused in one line; the
hooks follow the written rules; state, checkpoints and saved learners work per member."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from conftest import idx_folder, tiny_arrays, whole_and_resumed

import lifelong as ll
from lifelong.cli import build_run_config, make_parser
from lifelong.data import Stream
from lifelong.registry import STRATEGIES
from lifelong.strategies import load_all
from lifelong.strategies.agem import agem_project
from lifelong.strategies.base import Penalty
from lifelong.strategies.gem import flat_grad
from lifelong.train import step_loss

load_all()
FAST = ll.TrainConfig(optimizer="adam", lr=0.01, batch_size=16, epochs=1, device="cpu", seed=1)
PAIRS = list(itertools.combinations(STRATEGIES.names(), 2))


def two_tasks(stream: Stream) -> Stream:
    return Stream(stream.name, stream.tasks[:2], stream.scenario, stream.input_shape, stream.num_classes)


def small_model(stream, seed=0):
    torch.manual_seed(seed)
    return ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(8,))


@pytest.mark.parametrize("first, second", PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_every_pair_trains_or_is_refused_in_one_line(first, second, tiny_task_stream):
    stream = two_tasks(tiny_task_stream)
    try:
        strategy = ll.make_strategy(f"{first}+{second}")
    except ll.LifelongError as exc:
        message = str(exc)
        assert "\n" not in message and (first in message or second in message), message
        return
    _, result = ll.fit(stream, small_model(stream), strategy, FAST)
    assert [len(row) for row in result.accuracy_matrix] == [2, 2]
    assert result.memory_bytes[-1] == sum(m.memory_bytes() for m in strategy.members)


@pytest.mark.parametrize("name, conflict", [
    ("replay+generative-replay", "each score the batch"),
    ("joint+generative-replay", "each supply the training data"),
    ("pnn+ewc", "pnn routes each task to its own weights"),
    ("ewc+packnet", "packnet routes each task"),
    ("ewc+ewc", "'ewc' appears twice"),
    ("ewc+", "has an empty member or spaces; join two or more"),
    ("ewc + si", "has an empty member or spaces"),
    ("ewc+replayy", "unknown strategy 'replayy'"),
])
def test_conflicting_members_are_refused_naming_the_conflict(name, conflict):
    with pytest.raises(ll.LifelongError, match=conflict):
        ll.make_strategy(name)


def test_options_per_member_in_python_flat_or_nested_and_unknown_members_refused():
    nested = ll.make_strategy("ewc+replay", ewc={"lam": 1000}, replay={"buffer_size": 500})
    flat = ll.make_strategy("ewc+replay", **{"ewc.lam": 1000, "replay.buffer_size": 500})
    assert nested.hyperparameters() == flat.hyperparameters()
    assert nested.hyperparameters()["ewc"]["lam"] == 1000 and nested.members[1].buffer_size == 500
    assert nested.name == "ewc+replay" and [m.name for m in nested.members] == ["ewc", "replay"]
    with pytest.raises(ll.LifelongError, match="has no member 'lam'"):
        ll.make_strategy("ewc+replay", lam=3)
    with pytest.raises(ll.LifelongError, match="strategy 'replay' has no hyper-parameter 'lam'"):
        ll.make_strategy("ewc+replay", **{"replay.lam": 3})


def test_command_line_and_toml_name_the_same_combination(tmp_path):
    args = make_parser().parse_args(["run", "--strategy", "ewc+replay", "--param", "ewc.lam=1000",
                                     "--param", "replay.buffer_size=500"])
    from_flags = build_run_config(args)
    toml = tmp_path / "run.toml"
    toml.write_text('strategy = ["ewc", "replay"]\n[strategy_options.ewc]\nlam = 1000\n'
                    '[strategy_options.replay]\nbuffer_size = 500\n')
    from_file = build_run_config(make_parser().parse_args(["run", str(toml)]))
    assert from_flags.strategy == from_file.strategy == "ewc+replay"
    assert from_flags.run_id() == from_file.run_id()
    built = ll.make_strategy(from_file.strategy, **from_file.strategy_options)
    assert built.hyperparameters()["ewc"]["lam"] == 1000
    flags = ["run", "--strategy", "ewc+si", "--hparams", "course"]
    course = build_run_config(make_parser().parse_args(flags))
    assert course.strategy_options == {"ewc.lam": 100.0, "si.lam": 1.0, "si.xi": 0.1}


def test_compare_sets_a_member_alone_and_in_combinations(tmp_path):
    from lifelong.compare import Comparison

    comparison = Comparison.from_dict({"strategies": ["ewc", "ewc+replay"], "params": {
        "ewc": {"lam": 10}, "ewc+replay": {"replay.buffer_size": 50}}})
    options = {m.label: m.options for m in comparison.methods}
    assert options == {"ewc (lam=10)": {"lam": 10},
                       "ewc+replay (ewc.lam=10, replay.buffer_size=50)": {"ewc.lam": 10,
                                                                          "replay.buffer_size": 50}}
    runs = comparison.plan()
    assert runs[1].config.strategy_options["replay"]["buffer_size"] == 50
    with pytest.raises(ll.LifelongError, match="params for 'si'"):
        Comparison.from_dict({"strategies": ["ewc+replay"], "params": {"si": {"lam": 1}}})


def test_the_loss_is_the_scorers_the_penalty_the_regularisers_and_the_step_their_sum(tiny_domain_stream):
    """ewc+replay+lwf: replay scores the batch (new ∪ stored), LwF adds its distillation, EWC its
    penalty; the gradient after the loop's step equals autograd of the whole sum."""
    stream = tiny_domain_stream
    model = small_model(stream)
    combo = ll.make_strategy("ewc+replay+lwf", replay={"replay_batch_size": 6})
    combo.setup(stream, FAST)
    task = stream[0]
    x, y, t = task.x_train[:16], task.y_train[:16], task.train_ids()[:16]
    combo.before_task(model, task)
    for member in combo.members:
        member.before_task(model, task)
    combo.members[1].after_forward(model, (x, y, t), model(x).detach(), task)  # 16 stored
    combo.after_task(model, task)  # EWC's Fisher, LwF's old model
    combo.tasks_learned_ = 1
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ewc, replay, lwf = combo.members
    state = replay.rng().get_state()
    batch = (task.x_train[16:26], task.y_train[16:26], task.train_ids()[16:26])
    loss, outputs, penalty = step_loss(model, combo, batch, task)
    assert isinstance(penalty, Penalty) and float(penalty) == pytest.approx(float(ewc.penalty(model)))
    model.zero_grad()
    loss.backward()
    combo.read_gradient(model)
    penalty.add_gradient()
    ours = [p.grad.clone() for p in model.parameters()]

    pick = torch.randperm(16, generator=torch.Generator().set_state(state))[:6]
    xs, ys = torch.cat([batch[0], x[pick]]), torch.cat([batch[1], y[pick]])
    model.zero_grad()
    reference = (F.cross_entropy(model(xs), ys)
                 + lwf.extra_loss(model, batch, model(batch[0]), task)
                 + ewc.lam * sum((ewc.omega_[n] * (p - ewc.anchor_[n]) ** 2).sum()
                                 for n, p in model.named_parameters()))
    reference.backward()
    assert float(loss.detach()) == pytest.approx(float(reference.detach()), rel=1e-5)
    for mine, p in zip(ours, model.parameters()):
        assert torch.allclose(mine, p.grad, atol=1e-5)


def test_projections_act_on_the_total_gradient_penalties_first(tiny_domain_stream):
    """agem+ewc: A-GEM projects (loss gradient + EWC's penalty gradient), never the loss's alone."""
    stream = tiny_domain_stream
    model = small_model(stream)
    combo = ll.make_strategy("agem+ewc", agem={"memory_per_task": 8, "ref_batch_size": 8})
    _, _ = ll.fit(Stream(stream.name, stream.tasks[:1], stream.scenario, stream.input_shape,
                         stream.num_classes), model, combo, FAST)
    agem, ewc = combo.members
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    task = stream[1]
    batch = (task.x_train[:16], (task.y_train[:16] + 1) % 4, task.train_ids()[:16])
    loss, _, penalty = step_loss(model, combo, batch, task)
    model.zero_grad()
    loss.backward()
    combo.read_gradient(model)
    penalty.add_gradient()
    total = flat_grad(list(model.parameters()))
    state = agem.rng().get_state()
    g_ref = agem.reference_gradient(model)
    agem.rng().set_state(state)
    combo.after_backward(model)
    assert torch.allclose(flat_grad(list(model.parameters())), agem_project(total, g_ref), atol=1e-6)


def test_si_integrates_the_loss_gradient_without_any_members_penalty():
    """si+l2: SI's path integral reads the gradient before SI's and L2's penalty gradients."""
    model = torch.nn.Sequential(torch.nn.Linear(1, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0], [1.0]]))
    combo = ll.make_strategy("si+l2", si={"lam": 1.0}, l2={"lam": 0.5})
    si, l2 = combo.members
    for member in combo.members:  # both penalise around 0 with Ω = 2 (SI) and 1 (L2)
        omega = {"0.weight": torch.full((2, 1), 2.0 if member is si else 1.0)}
        member.merge_importance(omega, {"0.weight": torch.zeros(2, 1)})
    task = ll.data.Task(1, "t", torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), torch.zeros(1, 1),
                        torch.zeros(1, dtype=torch.long), (0,))
    si.before_task(model, task)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    penalty = combo.penalty(model)
    loss = 0.5 * (model[0].weight - 3.0).pow(2).sum() + penalty.value
    optimizer.zero_grad()
    loss.backward()
    combo.read_gradient(model)
    penalty.add_gradient()
    optimizer.step()
    combo.after_step(model)
    # loss gradient at θ = 1: −2; penalties 2·1·2·1 + 2·0.5·1·1 = 5; Δθ = −0.1·3 = −0.3
    assert torch.allclose(si.path_["0.weight"].reshape(-1), torch.tensor([-0.6, -0.6]))


def test_state_is_saved_per_member_and_a_saved_combination_predicts_and_goes_on(tmp_path, tiny_domain_stream):
    stream = tiny_domain_stream
    first = Stream(stream.name, stream.tasks[:2], stream.scenario, stream.input_shape, stream.num_classes)
    model, combo = small_model(stream), ll.make_strategy("si+replay", replay={"buffer_size": 30})
    model, result = ll.fit(first, model, combo, FAST)
    tensors, structure = combo.state_dict()
    assert {k.split("/")[0] for k in structure} == {"si", "replay"}
    assert all(k.startswith(("si/", "replay/")) for k in tensors)
    assert result.memory_bytes[-1] == combo.members[0].memory_bytes() + combo.members[1].memory_bytes()
    ll.save_learner(tmp_path / "learner", model, combo)
    loaded_model, loaded = ll.load_learner(tmp_path / "learner", small_model(stream, seed=5))
    assert loaded.name == "si+replay" and loaded.hyperparameters() == combo.hyperparameters()
    with torch.no_grad():
        for task in stream:
            assert torch.equal(loaded.logits(loaded_model.eval(), task.x_test, task.test_ids()),
                               combo.logits(model.eval(), task.x_test, task.test_ids()))
    _, going_on = ll.fit(stream, model, combo, FAST, first_task=2)
    _, loaded_going_on = ll.fit(stream, loaded_model, loaded, FAST, first_task=2)
    assert going_on.accuracy_matrix == loaded_going_on.accuracy_matrix


def test_an_interrupted_combination_resumes_to_identical_numbers(tmp_path):
    data = idx_folder(tmp_path / "data", tiny_arrays())
    cfg = ll.RunConfig(benchmark="rotated-mnist", strategy="ewc+replay",
                       strategy_options={"replay": {"buffer_size": 40}},
                       benchmark_options={"source": str(data), "angles": [0, 45, 90]},
                       model_options={"hidden": [16]},
                       train=ll.TrainConfig(epochs=2, lr=0.01, batch_size=32, device="cpu"))
    whole, resumed = whole_and_resumed(cfg, tmp_path)
    assert resumed.accuracy_matrix == whole.accuracy_matrix
    assert resumed.memory_bytes == whole.memory_bytes


def test_a_combination_of_one_member_is_that_member():
    with pytest.raises(ll.LifelongError, match="two or more"):
        ll.strategies.Combined([ll.make_strategy("ewc")])


@pytest.mark.parametrize("bad", ["my+method", "My-Method", "a.b", "a/b", "with space", ""])
def test_a_registered_name_cannot_hold_the_characters_that_join_or_address_members(bad):
    with pytest.raises(ll.LifelongError, match="is not allowed; use lower-case letters"):
        STRATEGIES.register(bad)


def test_a_member_with_an_underscore_in_its_name_resumes(tmp_path):
    """A combination's state keys are member/attr_: every registrable name must read back."""
    from lifelong.strategies.replay import Replay

    @STRATEGIES.register("my_replay", "a replay under another name")
    class MyReplay(Replay):
        pass

    try:
        data = idx_folder(tmp_path / "data", tiny_arrays())
        cfg = ll.RunConfig(benchmark="rotated-mnist", strategy="ewc+my_replay",
                           benchmark_options={"source": str(data), "angles": [0, 45, 90]},
                           model_options={"hidden": [8]},
                           train=ll.TrainConfig(epochs=1, lr=0.01, batch_size=32, device="cpu"))
        whole, resumed = whole_and_resumed(cfg, tmp_path)
        assert resumed.accuracy_matrix == whole.accuracy_matrix
    finally:
        STRATEGIES.unregister("my_replay")
