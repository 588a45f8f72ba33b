"""The "A new metric" example of the user docs, run as written: one file registers a metric and
`lifelong report` shows it in the Markdown table, table.csv, seeds.csv and the HTML page."""

import csv
import io
import re
import sys
from pathlib import Path

import pytest
from test_report import fake_result

from lifelong.metrics import METRICS, all_metrics
from lifelong.results import save_result

EXAMPLE = '''\
"""my_metrics.py: the accuracy on the worst task at the end, in every table."""
import sys

from lifelong.cli import main
from lifelong.metrics import METRICS


@METRICS.register("worst", label="worst task", meaning="accuracy on the worst task at the end")
def worst_task_accuracy(R):
    """worst = min_j R_{T,j}: the lowest accuracy of the last row."""
    return min(R[-1])


if __name__ == "__main__":  # python my_metrics.py runs/compare
    sys.exit(main(["report", *sys.argv[1:]]))
'''
"""The docs' code block, verbatim (docs/extending.md, "A new metric")."""


@pytest.fixture
def runs_folder(tmp_path):
    for seed, final in ((0, [0.8, 0.8, 0.9]), (1, [0.9, 0.9, 0.9])):
        save_result(fake_result("ewc", seed, final), tmp_path / f"ewc-{seed}")
    save_result(fake_result("naive", 0, [0.3, 0.6, 0.9]), tmp_path / "naive-0")
    return tmp_path


@pytest.fixture
def run_example(monkeypatch):
    """Runs EXAMPLE as `python my_metrics.py FOLDER`; unregisters its metric afterwards."""
    before = METRICS.names()

    def run(*argv: str) -> int:
        monkeypatch.setattr(sys, "argv", ["my_metrics.py", *argv])
        with pytest.raises(SystemExit) as stop:
            exec(compile(EXAMPLE, "my_metrics.py", "exec"), {"__name__": "__main__"})
        return stop.value.code

    yield run
    if "worst" in METRICS:
        METRICS.unregister("worst")
    assert METRICS.names() == before  # the registry is as the other tests expect it


def test_a_registered_metric_appears_in_every_table(runs_folder, run_example, capsys):
    assert run_example(str(runs_folder)) == 0
    printed = capsys.readouterr().out
    head = printed.splitlines()[0]
    assert "| forgetting (%) | worst task (%) | wall time (s) |" in head  # after the built-ins, then costs
    # naive: last row [.3, .6, .9] → 0.3
    assert re.search(r"\| naive \| 1 \| 60\.00 \| -45\.00 \| 5\.00 \| 45\.00 \| 30\.00 \| 10\.0 \|", printed)
    # ewc seeds: 0.8 and 0.9 → 0.85, s = 0.0707107, half = 12.706205 · s / √2 = 0.63531
    assert "| 85.00 ± 63.53 |" in printed
    assert "worst task: accuracy on the worst task at the end" in printed
    assert (runs_folder / "table.md").read_text() == printed.split("report: ")[0][:-1]

    table = {r["method"]: r for r in csv.DictReader(io.StringIO((runs_folder / "table.csv").read_text()))}
    assert float(table["naive"]["worst"]) == pytest.approx(0.3) and table["naive"]["worst_ci95"] == ""
    assert list(table["naive"]).index("worst") == list(table["naive"]).index("forgetting_ci95") + 1
    seeds = list(csv.DictReader(io.StringIO((runs_folder / "seeds.csv").read_text())))
    assert sorted(float(r["worst"]) for r in seeds) == pytest.approx([0.3, 0.8, 0.9])

    page = (runs_folder / "report.html").read_text()
    assert "<th>worst task (%)</th>" in page and "<td>30.00</td>" in page and "<td>85.00 ± 63.53</td>" in page


def test_a_registered_metric_is_computed_for_new_runs(run_example, tmp_path):
    assert run_example(str(tmp_path)) == 2  # an empty folder: the report's one-line error
    R = [[0.9, 0.1, 0.1], [0.6, 0.9, 0.2], [0.3, 0.6, 0.9]]
    out = all_metrics(R, [0.1, 0.1, 0.1])
    assert list(out) == ["acc", "bwt", "fwt", "forgetting", "learning_accuracy", "aia", "worst"]
    assert out["worst"] == pytest.approx(0.3)
    assert METRICS.get("worst").formula.startswith("worst = min_j R_{T,j}")


def test_the_docs_show_this_example():
    docs = Path(__file__).parents[1] / "docs" / "extending.md"
    text = docs.read_text() if docs.exists() else ""
    if "A new metric" not in text:
        pytest.skip("docs/extending.md has no section 'A new metric' yet")
    section = text.split("A new metric", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block and block.group(1) == EXAMPLE
