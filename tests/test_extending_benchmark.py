"""The user docs' "A new benchmark" example (tests/examples/split_ordered.py) runs as written."""

from __future__ import annotations

import runpy
from pathlib import Path

from lifelong.cli import main
from lifelong.registry import BENCHMARKS

EXAMPLE = Path(__file__).parent / "examples" / "split_ordered.py"


def test_the_new_benchmark_example_runs_and_is_listed(capsys):
    try:
        runpy.run_path(str(EXAMPLE), run_name="__main__")
        assert capsys.readouterr().out.strip() == "ordered-shapes ['cross+square', 'circle+star']"
        assert main(["list"]) == 0
        assert "split-ordered" in capsys.readouterr().out
    finally:
        BENCHMARKS.unregister("split-ordered")
    assert "split-ordered" not in BENCHMARKS
