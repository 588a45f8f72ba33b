"""The comparison's tables from saved results: columns from the metric registry, then what
each run cost. ``markdown_table`` (``table.md``, printed by the CLI), ``csv_table``
(``table.csv``: fractions, not %), ``seeds_csv`` (``seeds.csv``: one row per run)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .extra_tables import (
    MARK,
    Roles,
    differences_table,
    further_table,
    not_significant,
    partner,
    scenarios_tables,
)
from .extra_tables import significance_note as significance_note
from .metrics import MEGABYTES, METRICS, SECONDS, Format
from .results import metric_value
from .stats import mean_ci

if TYPE_CHECKING:
    from .plots import Groups

Collected = dict[str, "Groups"]
"""benchmark label → method label → runs (one per seed)."""


@dataclass(frozen=True)
class Column:
    """A numeric column of the tables: ``key`` in the rows and table.csv, ``label`` and unit in
    the title (``ACC (%)``), ``meaning`` in the key under the table; ``interval``: it has a
    95% CI (``key_ci95``) over seeds."""

    key: str
    label: str
    meaning: str
    fmt: Format | None = None
    interval: bool = True

    @property
    def title(self) -> str:
        return f"{self.label} ({self.fmt.unit})" if self.fmt else self.label

    def cell(self, row: dict[str, Any]) -> str:
        value = row[self.key]
        if self.fmt is None or value is None:
            return str(value or "")
        mark = f" {MARK}" if row.get(f"{self.key}_ns") else ""
        seeds = row["seeds"] if self.interval else 1
        return self.fmt(value, row.get(f"{self.key}_ci95") or 0.0, seeds) + mark


RESOURCES = (
    Column("wall_time_s", "wall time", "the whole run, evaluation included", SECONDS),
    Column("memory_mb", "memory", "learned state kept between tasks (stored examples, importances, "
           "old weights)", MEGABYTES, interval=False),
    Column("parameters", "parameters", "the model's size at the end", interval=False),
)
"""What every run costs, after the registered metrics in every table."""


def columns() -> list[Column]:
    """The tables' numeric columns: every registered summary metric, in registration order, then
    the resources."""
    return [*(Column(m.name, m.label, m.meaning, m.fmt) for m in METRICS.summary()), *RESOURCES]

def table_rows(groups: Groups, baseline: str | None = None) -> list[dict[str, Any]]:
    """One row per method: mean and 95% CI half-width of each metric over seeds; with a
    ``baseline`` method, ``<metric>_ns`` True where a paired t-test over seeds finds no significant
    difference to it (False where it does; absent without a test)."""
    rows = []
    for label, runs in groups.items():
        row: dict[str, Any] = {"method": label, "seeds": len(runs)}
        for metric in METRICS.summary():
            values = [metric_value(r, metric) for r in runs]
            known = None not in values  # a metric that needs a reference run without one: blank
            row[metric.name], row[f"{metric.name}_ci95"] = mean_ci(values) if known else (None, None)
            test = not_significant(groups, label, baseline, metric) if known else None
            if test is not None:
                row[f"{metric.name}_ns"] = test
        row["wall_time_s"], row["wall_time_s_ci95"] = mean_ci([r.wall_time for r in runs])
        row["memory_mb"] = mean_ci([(r.memory_bytes or [0])[-1] / 1e6 for r in runs])[0]
        row["parameters"] = (runs[0].model_sizes or [{}])[-1].get("parameters")
        rows.append(row)
    return rows


def key_text() -> str:
    """The columns' meaning, under the Markdown table and on the HTML page."""
    return " · ".join(f"{c.label}: {c.meaning}" for c in columns()) + " (README, Metrics)"


def markdown_table(collected: Collected, named: dict[str, Roles] | None = None) -> str:
    """The main table; with ``named`` roles (benchmark → ``Roles``), a difference to the baseline
    that a paired t-test over seeds finds not significant is marked, with a note saying so."""
    named = named or {}
    cols = columns()
    head = ["benchmark", "method", "seeds", *(c.title for c in cols)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (1 + len(cols))) + "|"]
    tested: list[str] = []
    for bench, groups in collected.items():
        baseline = named.get(bench, Roles()).baseline
        for r in table_rows(groups, baseline):
            cells = [bench, r["method"], str(r["seeds"]), *(c.cell(r) for c in cols)]
            lines.append("| " + " | ".join(cells) + " |")
            if any(k.endswith("_ns") for k in r) and baseline not in tested:
                tested.append(str(baseline))
    seeds = max(len(runs) for groups in collected.values() for runs in groups.values())
    note = ("\nmean ± 95% confidence interval over seeds (Student's t)\n" if seeds > 1 else "")
    note += "".join(f"\n{significance_note(b)}\n" for b in tested)
    return "\n".join(lines) + "\n" + note + "\n" + key_text() + "\n"


def extra_tables(collected: Collected, named: dict[str, Roles] | None = None) -> list:
    """The tables under the main one (``extra_tables``): further metrics, differences to the
    baseline, scenarios side by side — those that have something to show."""
    named = named or {}
    tables = [further_table(collected, named), differences_table(collected, named),
              *scenarios_tables(collected)]
    return [t for t in tables if t is not None]


def report_markdown(collected: Collected, named: dict[str, Roles] | None = None) -> str:
    """``table.md``: the main table, then the others."""
    more = [t.markdown() for t in extra_tables(collected, named)]
    return "\n".join([markdown_table(collected, named), *more])


def csv_table(collected: Collected) -> str:
    """``table.csv``: the table's numbers as fractions (not %), the CI half-width empty for one
    seed (undefined for n = 1)."""
    buf = io.StringIO()
    fields = ["benchmark", "method", "seeds"]
    fields += [f for c in columns() for f in ([c.key, f"{c.key}_ci95"] if c.interval else [c.key])]
    writer = csv.DictWriter(buf, fields, lineterminator="\n")
    writer.writeheader()
    for bench, groups in collected.items():
        for r in table_rows(groups):
            row = {"benchmark": bench, **{k: r[k] for k in fields[1:]}}
            if r["seeds"] == 1:
                row.update({k: "" for k in fields if k.endswith("_ci95")})
            writer.writerow(clean_floats(row))
    return buf.getvalue()


def seeds_csv(collected: Collected, named: dict[str, Roles] | None = None) -> str:
    """``seeds.csv``: one row per run (per seed), for paired tests or any other analysis; a metric
    that needs a reference run is measured against the reference's run of the same seed."""
    named = named or {}
    buf = io.StringIO()
    fields = ["benchmark", "method", "seed", "run_id", *METRICS.names(), "wall_time_s", "memory_mb"]
    writer = csv.DictWriter(buf, fields, lineterminator="\n")
    writer.writeheader()
    for bench, groups in collected.items():
        reference = named.get(bench, Roles()).reference
        for method, runs in groups.items():
            for r in runs:
                seed = (r.config.get("train") or {}).get("seed")
                ref = partner(groups, reference, r)
                writer.writerow(clean_floats(
                    {"benchmark": bench, "method": method, "seed": seed, "run_id": r.run_id,
                     **{m.name: metric_value(r, m, ref) for m in METRICS}, "wall_time_s": r.wall_time,
                     "memory_mb": (r.memory_bytes or [0])[-1] / 1e6}))
    return buf.getvalue()


def clean_floats(row: dict[str, Any]) -> dict[str, Any]:
    """Floats to 12 significant digits, so a CSV says ``0.761``, not ``0.7609999999999999``
    (float noise from sums and means; far below any digit a metric means)."""
    return {k: float(f"{v:.12g}") if isinstance(v, float) else v for k, v in row.items()}
