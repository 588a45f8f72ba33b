"""Huge counts, threads, --version, SIGTERM and CSVs without float noise (issue 18, items 3, 8, 9)."""

import json

import pytest
import torch
from conftest import idx_folder, tiny_arrays

from lifelong.batches import batch_indices
from lifelong.cli import main

FAST = ["--epochs", "1", "--lr", "0.01", "--device", "cpu", "--mopt", "hidden=[8]"]


@pytest.fixture
def data_dir(tmp_path):
    return idx_folder(tmp_path / "data", tiny_arrays())


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "9223372036854775808"], "batch_size must be below 2**63 (what torch takes"),
    (["--epochs", "1000000000000"], "epochs must be at most 10000 per task, got 1000000000000"),
    (["--epochs", "1e12"], "argument --epochs: invalid int value: '1e12'"),
])
def test_huge_counts_are_one_line(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) if "1e12" in args else _nothing():
        code = main(["run", *args, "--out", str(tmp_path / "r")])
        assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_batch_larger_than_the_data_is_the_data(tmp_path, data_dir, capsys):
    (whole,) = batch_indices(10, 2**63 - 1, torch.Generator().manual_seed(0))
    assert sorted(whole.tolist()) == list(range(10))
    out = tmp_path / "r"
    for size in ("9223372036854775807", "100000"):
        assert main(["run", "--benchmark", "split-mnist", "--data", str(data_dir), *FAST,
                     "--batch-size", size, "--out", str(out)]) == 0
    a, b = (json.loads((d / "result.json").read_text())["accuracy_matrix"] for d in sorted(out.iterdir()))
    assert a == b  # both are one batch of the whole task per epoch


def test_version(capsys):
    import lifelong

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out == f"lifelong {lifelong.__version__}\n"


def test_sigterm_is_handled_as_ctrl_c(monkeypatch, capsys):
    import os
    import signal
    import time

    import lifelong.cli as cli

    def killed(args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        return 0

    monkeypatch.setattr(cli, "cmd_list", killed)
    assert main(["list"]) == 143
    assert capsys.readouterr().err == "\ninterrupted; finished results are kept\n"
    assert signal.getsignal(signal.SIGTERM) is not cli._terminate  # restored


def test_csvs_have_no_float_noise():
    from lifelong.tables import clean_floats

    row = {"acc": 0.7609999999999999, "seeds": 1, "m": "x"}
    assert clean_floats(row) == {"acc": 0.761, "seeds": 1, "m": "x"}
    assert str(clean_floats({"a": 0.1 + 0.2})["a"]) == "0.3"


def test_threads_flag_sets_torch_threads_and_is_recorded(tmp_path, data_dir):
    before = torch.get_num_threads()
    try:
        assert main(["run", "--benchmark", "split-mnist", "--data", str(data_dir), *FAST,
                     "--threads", "2", "--out", str(tmp_path / "r")]) == 0
        (run_dir,) = (tmp_path / "r").iterdir()
        assert json.loads((run_dir / "result.json").read_text())["environment"]["threads"] == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("args, message", [
    (["run", "--threads", "0"], "option --threads must be a positive integer, got 0"),
    (["compare", "--threads", "2", "--jobs", "2"], "give one of --threads and --jobs"),
])
def test_bad_threads_are_one_line(tmp_path, capsys, args, message):
    assert main([*args, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_default_threads_never_exceed_the_usable_cores(monkeypatch):
    from lifelong import executors, threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(executors, "cores", lambda: 1)
        torch.set_num_threads(2)
        assert threads.set_threads(None) == 1
        torch.set_num_threads(1)
        monkeypatch.setattr(executors, "cores", lambda: 4)
        assert threads.set_threads(None) == 1  # fewer than the cores: torch's choice is kept
    finally:
        torch.set_num_threads(before)


def test_busy_note():
    from lifelong.threads import busy_note

    assert busy_note(2, load=0.1, n=2) is None
    assert busy_note(2, load=3.9, n=2) == ("note: the machine is busy (load 3.9 on 2 cores, and this run "
                                           "adds 2 threads); training will be slower than alone "
                                           "(--threads 1 helps)")
    assert busy_note(1, load=1.2, n=2) is None


def test_readme_first_snippet_gives_the_numbers_of_run():
    """The README's first Python block, on tiny data and one epoch, gives lifelong.run's numbers."""
    from pathlib import Path

    import lifelong as ll

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    block = readme.split("```python")[1].split("```")[0]
    assert block.index("torch.manual_seed(0)") < block.index("ll.make_model(")
    code = (block.replace('ll.make_benchmark("rotated-mnist")',
                          'll.make_benchmark("rotated-mnist", arrays=ARR)')
            .replace('ll.preset("homework")', 'll.preset("homework", epochs=1, device="cpu")')
            .replace("print(", "(lambda *a: None)("))
    names = {"ARR": tiny_arrays()}
    torch.manual_seed(123)  # whatever came before
    exec(code, names)
    config = ll.RunConfig(train=ll.preset("homework", epochs=1, device="cpu"))
    reference = ll.run(config, stream=names["stream"])
    assert names["result"].accuracy_matrix == reference.accuracy_matrix
