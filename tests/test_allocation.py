"""What PNN, PackNet and CPG share: task identity, zero forgetting, model size, exact resume."""

import dataclasses
import json

import pytest
import torch
from conftest import idx_folder, tiny_arrays, whole_and_resumed
from safetensors.torch import load_file, save_file

import lifelong as ll
from lifelong.data import rotated, split
from lifelong.metrics import backward_transfer
from lifelong.train import run_stream

METHODS = ["pnn", "packnet", "cpg"]
CFG = ll.TrainConfig(optimizer="adam", lr=0.01, batch_size=32, epochs=4, device="cpu", seed=1,
                     eval_every_epoch=False)


def rotated_task_stream():
    """3 rotated tasks over 4 classes, task identity known: one shared label space."""
    return rotated(angles=(0, 45, 90), arrays=tiny_arrays(), scenario="task")


def new_model(stream, kind="mlp"):
    torch.manual_seed(0)
    options = {"hidden": (24, 12)} if kind == "mlp" else {"channels": (4, 6), "hidden": 12}
    return ll.make_model(kind, stream.input_shape, stream.num_classes, **options)


def train(method, stream, kind="mlp", config=CFG, **options):
    """Run the stream; also record the logits of every task's test set after every task."""
    strategy = ll.make_strategy(method, **options)
    logits: list[list[torch.Tensor]] = []

    def record(model, optimizer, state):
        with torch.no_grad():
            logits.append([strategy.logits(model.eval(), t.x_test, t.test_ids()) for t in stream])
        model.train()

    model, state = run_stream(stream, new_model(stream, kind), strategy, config, on_task_end=record)
    return model, strategy, state, logits


@pytest.mark.parametrize("method", METHODS)
def test_streams_without_task_identity_are_refused_with_the_reason(method, tiny_class_stream,
                                                                   tiny_domain_stream):
    for stream in (tiny_class_stream, tiny_domain_stream):
        with pytest.raises(ll.LifelongError, match=f"strategy '{method}' needs the task identity"):
            ll.fit(stream, new_model(stream), ll.make_strategy(method), CFG)


CASES = [(m, "mlp", s, {}) for m in METHODS for s in ("rotated", "split")]
# packnet on the tiny CNN: conv1 has only 36 weights, so release half rather than 3/4 of them
CASES += [(m, "cnn", "rotated", {"prune": 0.5} if m == "packnet" else {}) for m in METHODS]
# cpg grows at tasks 1 and 2; on the 4-channel CNN task 1 owns one new channel and leans on the
# picked old weights, which a pick mask learned in 8 steps at the default mask_lr makes too noisy
CASES += [("cpg", "mlp", "rotated", {"max_sparsity": 0.0})]
CASES += [("cpg", "cnn", "rotated", {"max_sparsity": 0.0, "mask_lr": 1e-4})]


@pytest.mark.parametrize("method, kind, stream_name, options", CASES,
                         ids=[f"{m}-{k}-{s}{'-grown' if o.get('max_sparsity') == 0 else ''}"
                              for m, k, s, o in CASES])
def test_old_tasks_answers_never_change_so_bwt_is_exactly_zero(method, kind, stream_name, options,
                                                               tiny_task_stream):
    stream = rotated_task_stream() if stream_name == "rotated" else tiny_task_stream
    config = CFG if kind == "mlp" else dataclasses.replace(CFG, lr=0.03)  # the tiny CNN learns slower
    _, _, state, logits = train(method, stream, kind, config, **options)
    matrix = state.accuracy_matrix
    for i in range(len(stream)):
        assert matrix[i][i] >= 0.75, f"task {i} was not learned: {matrix}"
        for j in range(i + 1, len(stream)):
            assert matrix[j][i] == matrix[i][i]
            assert torch.equal(logits[j][i], logits[i][i]), "an old task's logits moved"
    assert backward_transfer(matrix) == 0.0


def test_naive_does_change_old_answers_on_the_same_stream():
    """The exactness check above can fail: fine-tuning moves task 0's logits."""
    _, _, _, logits = train("naive", rotated_task_stream())
    assert not torch.equal(logits[2][0], logits[0][0])


def test_model_size_pnn_grows_packnet_fixed_cpg_only_when_it_must():
    stream = rotated_task_stream()
    sizes = {m: [s["parameters"] for s in train(m, stream)[2].model_sizes] for m in METHODS}
    base = sum(p.numel() for p in new_model(stream).parameters())
    assert sizes["pnn"][0] == base and sizes["pnn"][0] < sizes["pnn"][1] < sizes["pnn"][2]
    assert sizes["packnet"] == [base] * 3
    assert sizes["cpg"] == [base] * 3  # the compacted tasks left room: no growth
    # max_sparsity=0: task 0 keeps every weight, so task 1 must grow (and task 2 again)
    grown = [s["parameters"] for s in train("cpg", stream, max_sparsity=0.0)[2].model_sizes]
    assert grown[0] == base and grown[0] < grown[1] < grown[2]


def roundtrip(strategy, tmp_path):
    """Save the strategy's state as safetensors + JSON (no pickle) and load it into a new one."""
    tensors, structure = strategy.state_dict()
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp_path / "s.safetensors"))
    fresh = ll.make_strategy(strategy.name, **strategy.hyperparameters())
    fresh.load_state_dict(load_file(str(tmp_path / "s.safetensors")), json.loads(json.dumps(structure)))
    return fresh


@pytest.mark.parametrize("method, options", [("pnn", {}), ("packnet", {}), ("cpg", {}),
                                             ("cpg", {"max_sparsity": 0.0})],
                         ids=["pnn", "packnet", "cpg", "cpg-grown"])
def test_saved_state_and_rebuilt_model_reproduce_every_prediction(method, options, tmp_path):
    stream = rotated_task_stream()
    model, strategy, state, logits = train(method, stream, **options)
    fresh = roundtrip(strategy, tmp_path)
    fresh.setup(stream, CFG)
    fresh.tasks_learned_ = strategy.tasks_learned_  # as the loop (resume) and load_learner set it
    rebuilt = fresh.restore_model(new_model(stream))  # the resume order: state, structure, weights
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    with torch.no_grad():
        for t in stream:
            assert torch.equal(fresh.logits(rebuilt, t.x_test, t.test_ids()), logits[-1][t.id])


@pytest.mark.parametrize("method", METHODS)
def test_a_mixed_batch_is_routed_example_by_example(method):
    stream = rotated_task_stream()
    model, strategy, _, _ = train(method, stream)
    x = torch.cat([t.x_test[:5] for t in stream])
    ids = torch.cat([t.test_ids()[:5] for t in stream])
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mixed = strategy.predict(model.eval(), x[perm], ids[perm])
        alone = torch.cat([strategy.predict(model, t.x_test[:5], t.test_ids()[:5]) for t in stream])
    assert torch.allclose(mixed, alone[perm], atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_the_same_seed_gives_the_same_run(method):
    stream = split(classes_per_task=2, arrays=tiny_arrays(), scenario="task")
    first, second = train(method, stream)[2], train(method, stream)[2]
    assert first.accuracy_matrix == second.accuracy_matrix
    assert first.model_sizes == second.model_sizes


@pytest.mark.parametrize("method", METHODS)
def test_a_run_interrupted_after_a_task_resumes_to_identical_numbers(method, tmp_path):
    """Through the library's checkpoints: masks, columns and grown units come back exactly."""
    data = idx_folder(tmp_path / "data", tiny_arrays())
    options = {"max_sparsity": 0.0} if method == "cpg" else {}  # cpg: grows at tasks 1 and 2
    cfg = ll.RunConfig(benchmark="rotated-mnist", strategy=method, strategy_options=options,
                       benchmark_options={"source": str(data), "angles": [0, 45, 90], "scenario": "task"},
                       model_options={"hidden": [16, 8]},
                       train=ll.TrainConfig(epochs=2, lr=0.01, batch_size=32, device="cpu"))
    whole, resumed = whole_and_resumed(cfg, tmp_path)
    assert resumed.accuracy_matrix == whole.accuracy_matrix
    assert resumed.model_sizes == whole.model_sizes and resumed.memory_bytes == whole.memory_bytes
