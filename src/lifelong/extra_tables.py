"""The tables under the main one, from saved results: further metrics (those registered with
``summary=False``: learning accuracy, AIA, intransigence, min-ACC, the task-incremental scores of
class-incremental runs), each method's difference to the baseline with a paired t-test over
seeds, and the scenarios of one stream side by side. Each is a ``Table`` that the Markdown file
and the HTML page render alike.

Roles: the *baseline* is the comparison's first method (``naive (baseline)`` by default; in a
folder of runs without a plan, the one ``naive`` method); the *reference* of intransigence is the
method the comparison names (``--reference LABEL``), else its one ``joint`` method. A run is
paired with the baseline's or reference's run of the same seed on the same benchmark: runs with
the same seed start from the same initial weights and draw the same batches (``tests/test_stats``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .metrics import METRICS, Absent, Metric
from .results import RunResult, absent_reason, metric_value
from .stats import mean_ci, paired_t_test

if TYPE_CHECKING:
    from .plots import Groups

LEVEL = 0.05
"""Significance level of the paired tests."""
MARK = "†"
"""The main table's mark of a difference to the baseline that is not significant at ``LEVEL``."""


@dataclass(frozen=True)
class Roles:
    """Method labels with a role in a comparison (None: there is none)."""

    baseline: str | None = None
    reference: str | None = None


@dataclass
class Table:
    """A titled table of text cells, with notes under it."""

    title: str
    head: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.head) + " |",
                 "|" + "|".join(["---"] * 2 + ["---:"] * (len(self.head) - 2)) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n" + "".join(f"\n{note}\n" for note in self.notes)

    def html(self) -> str:
        import html

        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.head)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in self.rows)
        notes = "".join(f"<p class=\"note\">{html.escape(n)}</p>" for n in self.notes)
        return (f"<h3>{html.escape(self.title)}</h3><div style=\"overflow-x:auto\"><table class=\"results\">"
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{notes}")


def strategy_of(runs: list[RunResult]) -> str:
    return str(runs[0].config.get("strategy", "")) if runs else ""


def seed_of(run: RunResult) -> Any:
    return (run.config.get("train") or {}).get("seed")


def roles(groups: Groups, baseline: str | None = None, reference: str | None = None) -> Roles:
    """The roles in one benchmark's ``groups``: those named where they are among its methods,
    else the one ``naive`` method as baseline and the one ``joint`` method as reference."""
    def only(strategy: str) -> str | None:
        found = [label for label, runs in groups.items() if strategy_of(runs) == strategy]
        return found[0] if len(found) == 1 else None

    return Roles(baseline if baseline in groups else only("naive"),
                 reference if reference in groups else None if reference else only("joint"))


def partner(groups: Groups, label: str | None, run: RunResult) -> RunResult | None:
    """The run of method ``label`` with ``run``'s seed (None: no such method or seed)."""
    return next((r for r in groups.get(label or "", []) if seed_of(r) == seed_of(run)), None)


def paired(groups: Groups, label: str, baseline: str | None,
           metric: Metric) -> tuple[float, float, float, int] | None:
    """(mean difference to the baseline, its 95% CI half-width, p, pairs) of ``metric`` over the
    seeds both methods ran; None for the baseline itself, without one, or with fewer than 2 pairs."""
    if baseline is None or label == baseline:
        return None
    pairs = []
    for run in groups[label]:
        other = partner(groups, baseline, run)
        a, b = metric_value(run, metric), metric_value(other, metric) if other else None
        if a is not None and b is not None:
            pairs.append((a, b))
    if len(pairs) < 2:
        return None
    return (*paired_t_test([a for a, _ in pairs], [b for _, b in pairs]), len(pairs))


def not_significant(groups: Groups, label: str, baseline: str | None, metric: Metric) -> bool | None:
    """Whether ``label``'s difference to the baseline in ``metric`` is not significant at ``LEVEL``
    (None: no test)."""
    test = paired(groups, label, baseline, metric)
    return None if test is None else test[2] >= LEVEL


def significance_note(baseline: str) -> str:
    return (f"{MARK} not significantly different from {baseline} at the {LEVEL:g} level (two-sided paired "
            "t-test over seeds: runs with the same seed share initial weights and batch order; see the "
            "differences to the baseline below)")


def _reference_missing(label: str | None) -> str:
    if label:
        return f"the reference {label!r} has no run with this seed"
    return ("no reference run: add joint to the comparison (--strategies … joint) or name one with "
            "--reference LABEL")


def further_table(collected: dict[str, Groups], named: dict[str, Roles] | None = None) -> Table | None:
    """The registered metrics with ``summary=False``, mean ± 95% CI over seeds; a metric no run
    has is left out, with one line saying why (unless it does not apply to these runs at all)."""
    named = named or {}
    cells: dict[tuple[str, str, str], str] = {}
    reasons: dict[str, list[str]] = {}
    shown: list[Metric] = []
    for metric in METRICS.further():
        for bench, groups in collected.items():
            ref = named.get(bench, Roles()).reference
            for label, runs in groups.items():
                values, why = [], None
                for run in runs:
                    reference = partner(groups, ref, run) if metric.needs_reference else None
                    if metric.needs_reference and reference is None:
                        why = Absent(_reference_missing(ref))
                        break
                    why = absent_reason(run, metric, reference)
                    if why is not None:
                        break
                    values.append(metric_value(run, metric, reference))
                if why is None:
                    mean, half = mean_ci(values)
                    cells[(metric.name, bench, label)] = metric.fmt(mean, half, len(values))
                elif why.applies and str(why) not in reasons.setdefault(metric.name, []):
                    reasons[metric.name].append(str(why))
        if any(name == metric.name for name, _, _ in cells):
            shown.append(metric)
    notes = [f"{METRICS.get(name).label}: {'; '.join(texts)}" for name, texts in reasons.items() if texts]
    if not shown and not notes:
        return None
    table = Table("Further metrics", ["benchmark", "method", *(m.title for m in shown)], notes=notes)
    for bench, groups in collected.items():
        for label in groups:
            table.rows.append([bench, label, *(cells.get((m.name, bench, label), "") for m in shown)])
    if shown:
        table.notes.insert(0, " · ".join(f"{m.label}: {m.meaning}" for m in shown) + " (README, Metrics)")
    return table


def differences_table(collected: dict[str, Groups], named: dict[str, Roles]) -> Table | None:
    """Each method's difference to its benchmark's baseline in every summary metric, mean ± 95% CI
    over the paired seeds and the p-value; None where no pair of at least 2 seeds exists."""
    metrics = METRICS.summary()
    table = Table("Differences to the baseline (paired over seeds)",
                  ["benchmark", "method", "baseline", "pairs", *(f"Δ{m.title}" for m in metrics)])
    for bench, groups in collected.items():
        base = named.get(bench, Roles()).baseline
        for label in groups:
            tests = [paired(groups, label, base, m) for m in metrics]
            if all(t is None for t in tests):
                continue
            pairs = max(t[3] for t in tests if t is not None)
            table.rows.append([bench, label, str(base), str(pairs), *(
                "" if t is None else f"{m.fmt(t[0], t[1], t[3])} ({p_text(t[2])})"
                for m, t in zip(metrics, tests))])
    if not table.rows:
        return None
    table.notes.append(f"Δ: method − baseline, mean ± 95% CI over the seeds both ran; p: two-sided paired "
                       f"t-test (n − 1 degrees of freedom); {MARK} in the main table where p ≥ {LEVEL:g}")
    return table


def p_text(p: float) -> str:
    """``p = 0.0123``, or ``p < 0.001``."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}"


def scenario_of(runs: list[RunResult]) -> str | None:
    """The scenario of a benchmark's runs: recorded by the run, else its benchmark option."""
    run = runs[0]
    return run.extra.get("scenario") or (run.config.get("benchmark_options") or {}).get("scenario")


def scenarios_tables(collected: dict[str, Groups]) -> list[Table]:
    """For every stream run in several scenarios (``--scenario task domain class``): one table,
    a row per method, its ACC and BWT in each scenario side by side."""
    streams: dict[str, list[tuple[str, str]]] = {}
    for bench, groups in collected.items():
        runs = next(iter(groups.values()))
        options = {k: v for k, v in (runs[0].config.get("benchmark_options") or {}).items()
                   if k != "scenario"}
        key = f"{runs[0].config.get('benchmark', bench)} {sorted(options.items())}"
        scenario = scenario_of(runs)
        if scenario:
            streams.setdefault(key, []).append((scenario, bench))
    tables = []
    acc, bwt = METRICS.get("acc"), METRICS.get("bwt")
    for key, entries in streams.items():
        if len({s for s, _ in entries}) < 2:
            continue
        name = collected[entries[0][1]][next(iter(collected[entries[0][1]]))][0].config.get("benchmark", key)
        table = Table(f"{name}: the scenarios side by side", ["method", "seeds",
                      *(f"{m.label} {s}-IL ({m.fmt.unit})" for m in (acc, bwt) for s, _ in entries)])
        methods = list(dict.fromkeys(label for _, bench in entries for label in collected[bench]))
        for label in methods:
            cells = []
            for metric in (acc, bwt):
                for _, bench in entries:
                    runs = collected[bench].get(label, [])
                    values = [v for v in (metric_value(r, metric) for r in runs) if v is not None]
                    cells.append(metric.fmt(*mean_ci(values), len(values)) if values else "")
            seeds = {len(collected[bench].get(label, [])) for _, bench in entries} - {0}
            table.rows.append([label, "/".join(str(n) for n in sorted(seeds)), *cells])
        table.notes.append("task-IL: the task identity is given at test time (outputs masked to the task's "
                           "classes); domain-IL: one output per position in a task, no task identity; "
                           "class-IL: one output per class, no task identity (van de Ven & Tolias 2019)")
        tables.append(table)
    return tables
