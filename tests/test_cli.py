"""The command line: runs, lists, and turns user mistakes into one-line errors with status 2."""

import json
import subprocess
import sys

import pytest
from conftest import idx_folder, tiny_arrays

from lifelong.cli import main


@pytest.fixture
def data_dir(tmp_path):
    return idx_folder(tmp_path / "data", tiny_arrays())


FAST = ["--epochs", "1", "--lr", "0.01", "--batch-size", "32", "--device", "cpu", "--mopt", "hidden=[8]"]


def test_run_prints_summary_and_writes_results(tmp_path, data_dir, capsys):
    out = tmp_path / "runs"
    code = main(["run", "--benchmark", "split-mnist", "--strategy", "naive", "--data", str(data_dir),
                 *FAST, "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "ACC" in text and "BWT" in text and "FWT" in text and "naive" in text
    (run_dir,) = out.iterdir()
    result = json.loads((run_dir / "result.json").read_text())
    assert len(result["accuracy_matrix"]) == 2
    assert result["config"]["benchmark_options"]["source"] == str(data_dir)


def test_run_from_toml_with_flag_override(tmp_path, data_dir, capsys):
    config = tmp_path / "exp.toml"
    config.write_text(
        f'benchmark = "split-mnist"\nstrategy = "joint"\nmodel = "mlp"\n'
        f'[benchmark_options]\nsource = "{data_dir}"\n[model_options]\nhidden = [8]\n'
        f'[train]\nepochs = 1\nlr = 0.01\nbatch_size = 32\ndevice = "cpu"\nseed = 4\n'
    )
    assert main(["run", str(config), "--seed", "5", "--out", str(tmp_path / "r")]) == 0
    (run_dir,) = (tmp_path / "r").iterdir()
    assert run_dir.name.startswith("split-mnist-joint-s5-")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--strategy", "ewcc"], "unknown strategy 'ewcc'; known:"),
        (["--benchmark", "cifar"], "unknown benchmark 'cifar'; known:"),
        (["--model", "resnet"], "unknown model 'resnet'; known:"),
        (["--lr", "-1"], "lr must be in (0, 1e+30], got -1"),
        (["--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'"),
        (["--data", "/nonexistent/folder"], "data folder /nonexistent/folder does not exist"),
        (["--param", "lam"], "--param expects KEY=VALUE"),
        (["--param", "lam=3"], "strategy 'naive' has no hyper-parameter 'lam'; its hyper-parameters: none"),
        (["--preset", "fast"], "unknown preset 'fast'"),
        (["--bopt", "angles=[]"], "at least one angle"),
        (["--lr", "nan"], "lr must be in (0, 1e+30], got nan"),
        (["--seed", "99999999999999999999999"], "seed must be an integer in [0, "),
        (["--bopt", "seed=1.5"], "benchmark option seed must be an integer"),
        (["--device", "cuda:7"], "device 'cuda"),
        (["--mopt", "hidden=[-1]"], "hidden"),
        (["--out", ""], "output folder is an empty path"),
        (["--seed", "x"], "argument --seed: invalid int value: 'x'"),
        (["--bopt", "angles=[0, NaN]"], "angles must be numbers of degrees"),
    ],
)
def test_user_mistakes_are_one_line_errors(args, message, capsys, tmp_path):
    args = args if "--out" in args else [*args, "--out", str(tmp_path)]
    try:
        status = main(["run", *args])
    except SystemExit as exc:  # argparse's own usage errors
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_bad_toml_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("strategy = \n")
    assert main(["run", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    bad.write_text('stratgy = "naive"\n')
    assert main(["run", str(bad)]) == 2
    assert "unknown config key 'stratgy'" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_list_names_every_registry(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for name in ("rotated-mnist", "permuted-mnist", "split-mnist", "mlp", "cnn", "naive", "joint",
                 "homework"):
        assert name in text


def test_console_script_exit_status():
    proc = subprocess.run([sys.executable, "-m", "lifelong.cli", "run", "--strategy", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown strategy 'nope'")


def test_run_toml_takes_a_preset_and_text_options_written_as_booleans(tmp_path, data_dir):
    config = tmp_path / "exp.toml"
    config.write_text(
        f'benchmark = "split-mnist"\nstrategy = "ewc"\npreset = "gem"\n'
        f'[strategy_options]\nfisher = true\n'
        f'[benchmark_options]\nsource = "{data_dir}"\n[model_options]\nhidden = [8]\n'
    )
    args = ["run", str(config), "--out", str(tmp_path / "r"), "--param", "samples=None"]
    assert main(args) == 0
    (run_dir,) = (tmp_path / "r").iterdir()
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["train"]["optimizer"] == "sgd" and saved["train"]["batch_size"] == 10
    assert saved["strategy_options"]["fisher"] == "true"   # TOML's boolean true is EWC's word
    assert saved["strategy_options"]["samples"] is None    # `None` on the command line is None


def test_flag_preset_wins_over_the_toml_one(tmp_path):
    from lifelong.cli import build_run_config, make_parser

    config = tmp_path / "exp.toml"
    config.write_text('strategy = "ewc"\npreset = "gem"\n')
    args = make_parser().parse_args(["run", str(config), "--preset", "homework", "--param", "fisher=true"])
    run_config = build_run_config(args)
    assert run_config.train.optimizer == "adam" and run_config.train.lr == 1e-4
    from lifelong.strategies import make_strategy

    assert make_strategy(run_config.strategy, **run_config.strategy_options).fisher == "true"


def test_an_out_path_through_a_file_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "afile").write_text("not a folder")
    assert main(["run", "--out", str(tmp_path / "afile" / "sub")]) == 2
    err = capsys.readouterr().err
    assert "afile is a file, not a folder" in err and err.count("\n") == 1


@pytest.mark.parametrize("text, message", [
    ('train = "x"', "train must be a table"),
    ("strategy_options = [1, 2]", "strategy_options must be a table"),
    ('strategy = ["ewc", 3]', "strategy must be a name"),
])
def test_config_sections_of_the_wrong_kind_are_one_line_errors(tmp_path, capsys, text, message):
    config = tmp_path / "bad.toml"
    config.write_text(text + "\n")
    assert main(["run", str(config), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_folder_or_binary_file_as_config_is_a_one_line_error(tmp_path, capsys):
    assert main(["run", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe\x00bad")
    assert main(["run", str(tmp_path / "bin.toml")]) == 2
    assert "is not valid TOML" in capsys.readouterr().err


def test_comma_lists_and_explicit_values_in_labels(tmp_path):
    from lifelong.cli import build_comparison, make_parser, parse_value

    assert parse_value("0,45,90") == [0, 45, 90] and parse_value("a,b") == "a,b"
    args = make_parser().parse_args(["compare", "--strategies", "naive", "ewc", "--param", "ewc.lam=100",
                                     "--bopt", "angles=0,45,90"])
    comparison = build_comparison(args)
    assert [m.label for m in comparison.methods] == ["naive (baseline)", "ewc (lam=100)"]
    assert comparison.benchmarks[0].options["angles"] == [0, 45, 90]


def test_replaced_data_files_give_another_run_id(tmp_path):
    import os

    from lifelong.config import RunConfig

    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(b"old")
    config = RunConfig(benchmark_options={"source": str(folder)})
    before = config.run_id()
    (folder / "train-images-idx3-ubyte").write_bytes(b"new files")
    os.utime(folder / "train-images-idx3-ubyte", ns=(1, 2))
    assert config.run_id() != before
    assert RunConfig().run_id() == RunConfig().run_id()   # the embedded digits: no stamp


def test_param_of_a_hyphenated_strategy_keeps_its_name():
    """`--param online-ewc.lam=…` sets online EWC's λ (a hyphen in the option's name still reads as
    an underscore: `ewc.per-sample` is `per_sample`)."""
    from lifelong.cli import build_comparison, make_parser, parse_assignments

    assert parse_assignments(["online-ewc.lam=10", "ewc.per-sample=false", "max-steps=3"], "--param") == {
        "online-ewc.lam": 10, "ewc.per_sample": False, "max_steps": 3}
    args = make_parser().parse_args(["compare", "--strategies", "naive", "online-ewc", "--param",
                                     "online-ewc.lam=10", "--param", "online-ewc.gamma=0.9"])
    labels = [m.label for m in build_comparison(args).methods]
    assert labels == ["naive (baseline)", "online-ewc (lam=10, gamma=0.9)"]
