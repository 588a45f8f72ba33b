"""The --hparams files of docs/reproductions.md stay readable by `lifelong run`/`compare`, build
every method they name, and hold what the doc says they hold."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import lifelong as ll
from lifelong.config import preset
from lifelong.hparams import hparams_for, read_hparams

FOLDER = Path(__file__).parents[1] / "benchmarks" / "hparams"
FILES = sorted(FOLDER.glob("hsu2018-*.json"))
METHODS = {"ewc", "online-ewc", "si", "mas", "replay", "gem", "generative-replay"}
VAN_DE_VEN = FOLDER / "vandeven2019-class.json"
ALL_FILES = sorted(FOLDER.glob("*.json"))


def test_every_file_is_a_documented_protocol():
    assert [f.name for f in ALL_FILES] == [f.name for f in FILES] + [VAN_DE_VEN.name]
    doc = (FOLDER.parents[1] / "docs" / "reproductions.md").read_text()
    assert all(f"benchmarks/hparams/{f.stem.split('-')[0]}" in doc for f in ALL_FILES)


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
def test_every_entry_builds_its_method(path):
    for name in read_hparams(path):
        options, train = hparams_for(str(path), name)
        strategy = ll.make_strategy(name, **options)
        assert {k: strategy.hyperparameters()[k] for k in options} == options
        preset("homework", **train)  # a valid training protocol


def tuned_scores(source: str) -> dict[str, float]:
    """The validation scores a tuned entry's ``source`` records: {"lam=10, gamma=0.8": 20.0, …}."""
    listed = source.split("by value: ")[1].split(")")[0]
    return {point: float(score) for point, score in
            (re.match(r"(.*): ([0-9.]+)$", part.strip()).groups() for part in listed.split(";"))}


@pytest.mark.parametrize("name", ["ewc", "online-ewc", "si", "lwf", "icarl"])
def test_van_de_ven_choice_is_the_best_validation_score(name):
    """Each tuned value (a hyper-parameter, or iCaRL's lr) is the grid point with the highest
    recorded validation ACC."""
    entry = json.loads(VAN_DE_VEN.read_text())["strategies"][name]
    scores = tuned_scores(entry["source"])
    assert len(scores) >= 3
    values = {**entry["strategy_options"], **entry["train"]}
    searched = [k for k in values if f"{k}=" in next(iter(scores))]
    chosen = ", ".join(f"{k}={values[k]:g}" for k in searched)
    assert scores[chosen] == max(scores.values())


def test_generative_replay_targets_follow_each_paper():
    """Hsu et al.'s DGR row is Shin et al.'s hard labels; van de Ven & Tolias's DGR+distill soft."""
    for path in FILES:
        assert read_hparams(path)["generative-replay"]["strategy_options"]["targets"] == "hard"
    entries = read_hparams(VAN_DE_VEN)
    assert entries["generative-replay"]["strategy_options"]["targets"] == "soft"
    assert entries["icarl"]["strategy_options"]["buffer_size"] == 2000


def test_one_file_per_scenario():
    assert [f.stem for f in FILES] == ["hsu2018-class", "hsu2018-domain", "hsu2018-task"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_hsu_files_name_the_papers_methods(path):
    assert set(read_hparams(path)) == METHODS


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_tuned_lambda_is_from_the_documented_grid(path):
    """The doc's grid is Hsu et al.'s value × 0.1, 1, 10; the chosen λ is one of them."""
    for name, entry in json.loads(path.read_text())["strategies"].items():
        if "hsu_lam" in entry:
            grid = [entry["hsu_lam"] * f for f in (0.1, 1.0, 10.0)]
            assert any(entry["strategy_options"]["lam"] == pytest.approx(v) for v in grid), name


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_protocol_budgets_match_hsu(path):
    """1,100 stored examples for naive rehearsal and GEM (5 tasks × 220); GEM with plain SGD 0.01."""
    entries = read_hparams(path)
    assert entries["replay"]["strategy_options"]["buffer_size"] == 1100
    assert entries["gem"]["strategy_options"]["memory_per_task"] * 5 == 1100
    assert entries["gem"]["train"] == {"optimizer": "sgd", "lr": 0.01, "momentum": 0.0}
