"""Damaged saved files (checkpoints, result.json, comparison.json) are one-line errors naming the
file, the problem and the fix — never a traceback, never quietly wrong numbers."""

import hashlib
import json
import shutil

import pytest
import safetensors.torch
import torch
from conftest import Interrupt, idx_folder, stop_at, tiny_arrays
from test_report import fake_result

import lifelong as ll
from lifelong.cli import main
from lifelong.results import save_result
from lifelong.saved_state import json_digest


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return idx_folder(tmp_path_factory.mktemp("data"), tiny_arrays())


def config(data_dir, strategy="ewc"):
    return ll.RunConfig(benchmark="rotated-mnist", strategy=strategy,
                        benchmark_options={"source": str(data_dir), "angles": [0, 45, 90]},
                        model_options={"hidden": [16]},
                        train=ll.TrainConfig(epochs=1, lr=0.01, batch_size=32, device="cpu"))


@pytest.fixture(scope="module")
def ewc_checkpoint(data_dir, tmp_path_factory):
    """An EWC run interrupted after its first task: (config, out folder, checkpoint folder)."""
    cfg, out = config(data_dir), tmp_path_factory.mktemp("ewc")
    with pytest.raises(Interrupt):
        ll.run(cfg, out=out, progress=stop_at(1))
    return cfg, out / cfg.run_id() / "checkpoint"


@pytest.fixture
def damaged(ewc_checkpoint, tmp_path):
    """A fresh copy of the checkpoint to damage: (config, out, folder, meta)."""
    cfg, original = ewc_checkpoint
    folder = tmp_path / cfg.run_id() / "checkpoint"
    shutil.copytree(original, folder)
    return cfg, tmp_path, folder, json.loads((folder / "latest.json").read_text())


def write(folder, meta, forge=True):
    """Save ``meta``; ``forge`` recomputes its checksum, as a careful hand edit would."""
    if forge:
        meta["meta_sha256"] = json_digest(meta)
    (folder / "latest.json").write_text(json.dumps(meta))


def refused(cfg, out, match):
    with pytest.raises(ll.LifelongError, match=match) as err:
        ll.run(cfg, out=out)
    message = str(err.value)
    assert "\n" not in message and message.startswith("checkpoint file ")
    assert message.endswith("(or rerun with --force) to restart this run from scratch")


@pytest.mark.parametrize("field, value", [
    ("elapsed", "x"), ("elapsed", float("nan")), ("numpy_random", "x"), ("numpy_random", [1, 2]),
    ("python_random", "x"), ("optimizer", {"foo": 1}), ("optimizer", {"state": {}, "param_groups": "x"}),
    ("optimizer", {"state": [], "param_groups": []}), ("progress", {"x": 1}), ("progress", "x"),
    ("strategy", "x"), ("strategy", {"omega_": 5}), ("strategy", {"__class__": 1}),
    ("strategy_aliases", {"a": [1]}), ("tasks_done", 2),
])
def test_every_malformed_checkpoint_field_is_a_one_line_error(damaged, field, value):
    cfg, out, folder, meta = damaged
    meta[field] = value
    write(folder, meta)
    refused(cfg, out, "latest.json is damaged")


def test_progress_with_a_wrong_accuracy_matrix_is_refused(damaged):
    cfg, out, folder, meta = damaged
    meta["progress"]["accuracy_matrix"] = [[0.5]]
    write(folder, meta)
    refused(cfg, out, r"damaged \(bad progress record.*accuracy_matrix is not 1×3")


def test_hand_edited_json_part_fails_its_checksum(damaged):
    cfg, out, folder, meta = damaged
    meta["elapsed"] = 1.5
    write(folder, meta, forge=False)
    refused(cfg, out, r"latest.json is damaged \(corrupt: checksum mismatch\)")


def test_emptied_strategy_state_is_refused_not_resumed_without_penalty(damaged):
    cfg, out, folder, meta = damaged
    meta["strategy"] = {}
    write(folder, meta, forge=False)  # the JSON part is protected by its own checksum ...
    refused(cfg, out, "checksum mismatch")
    write(folder, meta)  # ... and a forged checksum meets the fresh strategy's attributes
    refused(cfg, out, r"bad strategy state: .*lacks 'anchor_' of strategy 'ewc'")


def test_strategy_tensor_of_the_wrong_shape_is_refused(damaged):
    cfg, out, folder, meta = damaged
    tensors = safetensors.torch.load_file(folder / meta["tensors_file"])
    key = next(k for k in tensors if k.startswith("strategy/omega_/"))
    tensors[key] = torch.ones(1)  # would broadcast silently in the penalty
    blob = safetensors.torch.save(tensors)
    (folder / meta["tensors_file"]).write_bytes(blob)
    meta["tensors_sha256"] = hashlib.sha256(blob).hexdigest()
    write(folder, meta)
    refused(cfg, out, r"bad strategy state: .*omega_/.* has shape \[1\], not \[")


def test_intact_checkpoint_still_resumes(damaged):
    cfg, out, _, _ = damaged
    assert ll.run(cfg, out=out).extra["resumed_after_task"] == 1


# ---------------------------------------------------------------------------- saved results
def damage_result(path, how):
    data = json.loads(path.read_text())
    if how == "directory":
        path.unlink()
        path.mkdir()
        return
    if how == "no acc":
        del data["metrics"]["acc"]
    elif how == "acc high":
        data["metrics"]["acc"] = "high"
    elif how == "curve":
        data["curve"] = [{"x": 1}]
    elif how == "empty":
        data["accuracy_matrix"], data["initial_accuracy"], data["task_names"] = [], [], []
    elif how == "1x1":
        data["accuracy_matrix"] = [[0.5]]
    elif how == "nan":
        data["accuracy_matrix"][0][0] = float("nan")
    elif how == "not json":
        path.write_bytes(b"\xff\xfe{")
        return
    path.write_text(json.dumps(data))


HOWS = ["directory", "no acc", "acc high", "curve", "empty", "1x1", "nan", "not json"]


@pytest.fixture
def runs(tmp_path):
    for seed in (0, 1):
        save_result(fake_result("ewc", seed, [0.8, 0.8, 0.9]), tmp_path / f"ewc-{seed}")
    save_result(fake_result("naive", 0, [0.3, 0.6, 0.9]), tmp_path / "naive-0")
    return tmp_path


@pytest.mark.parametrize("how", HOWS)
def test_report_leaves_a_damaged_run_out_and_names_it(runs, capsys, how):
    damage_result(runs / "ewc-1" / "result.json", how)
    assert main(["report", str(runs)]) == 0
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"warning: left out of the report: {runs / 'ewc-1' / 'result.json'} ")
    assert "--force" in err
    assert "| rotated-mnist | ewc | 1 |" in out and (runs / "report.html").exists()
    assert main(["plot", str(runs)]) == 0


@pytest.mark.parametrize("how", HOWS)
def test_report_and_plot_of_one_damaged_run_are_one_line_errors(runs, capsys, how):
    damage_result(runs / "naive-0" / "result.json", how)
    for command in ("report", "plot"):
        assert main([command, str(runs / "naive-0")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: {runs / 'naive-0' / 'result.json'} ")


def comparison(folder, runs):
    for r in runs:
        save_result(r, folder / "runs" / r.run_id)
    plan = {"runs": [{"run_id": r.run_id, "benchmark": "rotated-mnist", "method": r.config["strategy"]}
                     for r in runs]}
    (folder / "comparison.json").write_text(json.dumps(plan))
    return plan


@pytest.mark.parametrize("run_id", [7, None, "../../elsewhere", ".."])
def test_comparison_json_with_a_bad_run_id_is_a_one_line_error(tmp_path, capsys, run_id):
    plan = comparison(tmp_path, [fake_result("ewc", 0, [0.8, 0.8, 0.9])])
    plan["runs"][0]["run_id"] = run_id
    (tmp_path / "comparison.json").write_text(json.dumps(plan))
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "comparison.json is malformed (runs[0]" in err


def test_comparison_reports_the_others_and_names_a_damaged_or_swapped_run(tmp_path, capsys):
    results = [fake_result("ewc", 0, [0.8, 0.8, 0.9]), fake_result("naive", 0, [0.3, 0.6, 0.9]),
               fake_result("ewc", 1, [0.9, 0.9, 0.9])]
    comparison(tmp_path, results)
    damage_result(tmp_path / "runs" / results[1].run_id / "result.json", "1x1")
    shutil.copy(tmp_path / "runs" / results[0].run_id / "result.json",
                tmp_path / "runs" / results[2].run_id / "result.json")  # another run's result
    assert main(["report", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 2 and results[1].run_id in lines[0] and "accuracy_matrix is not 3×3" in lines[0]
    assert f"holds run {results[0].run_id!r}, not {results[2].run_id!r}" in lines[1]
    assert "| rotated-mnist | ewc | 1 |" in out and "naive" not in out


def test_run_reuse_of_an_unreadable_result_is_a_one_line_error(tmp_path, data_dir):
    cfg = config(data_dir, "naive")
    (tmp_path / cfg.run_id() / "result.json").mkdir(parents=True)
    with pytest.raises(ll.LifelongError, match=r"result.json cannot be read \(IsADirectoryError\); delete"):
        ll.run(cfg, out=tmp_path)
