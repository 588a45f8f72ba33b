"""The comparison report, redrawn from saved results only (never from models).

``write_report(folder)`` writes, for every benchmark of the comparison, ``<bench>-curve.png/svg``
(learning curve) and ``<bench>-heatmaps.png/svg`` (accuracy matrices), then ``table.md``,
``table.csv`` and ``report.html`` — one self-contained page (SVG inline, PNG as base64) that
opens offline, with one heatmap per method at a readable size. ``folder`` is a comparison folder
(``comparison.json``), one run directory, or any folder of run directories (e.g. ``runs/`` of
``lifelong run``).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import LifelongError
from .extra_tables import Roles, roles
from .plots import heatmaps, learning_curve, save_figure
from .results import COMPARISON_FILE, RESULT_FILE, RUNS_DIR, RunResult, atomic_write, load_result, safe_name
from .tables import (
    Collected,
    columns,
    csv_table,
    extra_tables,
    key_text,
    markdown_table,
    report_markdown,
    seeds_csv,
    significance_note,
    table_rows,
)

__all__ = ["Collected", "collect", "csv_table", "html_page", "markdown_table", "named_roles", "read_plan",
           "report_markdown", "seeds_csv", "table_rows", "write_plots", "write_report"]

_SAFE_ID = re.compile(r"(?!\.\.?$)[\w.+-]+")
"""A run id that names one folder inside ``runs/`` (no separators, not . or ..)."""


def collect(folder: str | Path, warn: Callable[[str], None] | None = None) -> Collected:
    """Load every finished run a folder refers to, grouped by benchmark and method.

    A damaged run is left out and named through ``warn`` (default: a ``warning:`` line on
    stderr); when no run is left, that is the error."""
    folder = Path(folder)
    if (folder / COMPARISON_FILE).exists():
        entries = [(b, m, r, folder / RUNS_DIR / r) for b, m, r in read_plan(folder / COMPARISON_FILE)]
        entries = [e for e in entries if (e[3] / RESULT_FILE).exists()]  # unfinished: not yet
        empty = f"no finished runs yet in {folder / RUNS_DIR}; run the comparison"
    else:
        dirs = ([folder] if (folder / RESULT_FILE).exists() else
                sorted(p.parent for p in [*folder.glob(f"*/{RESULT_FILE}"),
                                          *folder.glob(f"{RUNS_DIR}/*/{RESULT_FILE}")]))
        entries = [(None, None, None, d) for d in dirs]
        empty = f"no results in {folder}; give a comparison folder or run directory"
    loaded: list[tuple[str | None, str | None, RunResult]] = []
    damaged: list[str] = []
    for bench, method, run_id, run_dir in entries:
        try:
            result = load_result(run_dir)
            if run_id is not None and result.run_id != run_id:
                raise LifelongError(f"{run_dir / RESULT_FILE} holds run {result.run_id!r}, not "
                                    f"{run_id!r}; delete {run_dir} (or rerun with --force) to retrain it")
            if result.extra.get("first_task"):
                raise LifelongError(f"{run_dir} holds a continued fit (trained from task "
                                    f"{result.extra['first_task']} on); a report compares runs of "
                                    "whole streams")
            loaded.append((bench, method, result))
        except LifelongError as exc:
            damaged.append(str(exc))
    if not loaded:
        more = f" (and {len(damaged) - 1} more damaged runs)" if len(damaged) > 1 else ""
        raise LifelongError(damaged[0] + more if damaged else empty)
    for message in damaged:
        (warn or _warn)(f"left out of the report: {message}")
    if loaded[0][0] is None:
        return _group([r for _, _, r in loaded])
    out: Collected = {}
    for bench, method, result in loaded:
        out.setdefault(str(bench), {}).setdefault(str(method), []).append(result)
    return out


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def read_plan(path: Path) -> list[tuple[str, str, str]]:
    """(benchmark, method, run_id) of every run a comparison.json plans, checked."""
    fix = "rerun `lifelong compare` to rewrite it"
    try:
        plan = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LifelongError(f"{path} cannot be read ({type(exc).__name__}: {exc}); {fix}") from None
    runs = plan.get("runs") if isinstance(plan, dict) else None
    if not isinstance(runs, list):
        raise LifelongError(f"{path} is malformed ('runs' is not a list); {fix}")
    entries = []
    for i, e in enumerate(runs):
        fields = [e.get(k) for k in ("benchmark", "method", "run_id")] if isinstance(e, dict) else [None]
        if not all(isinstance(f, str) and f for f in fields) or not _SAFE_ID.fullmatch(fields[2]):
            raise LifelongError(f"{path} is malformed (runs[{i}] needs string benchmark, method and "
                                f"a plain run_id); {fix}")
        entries.append(tuple(fields))
    return entries


SETTING = ("strategy_options", "model", "model_options", "train")
"""What makes two runs of a strategy the same method (the train settings without the seed)."""


def _group(results: list[RunResult]) -> Collected:
    """Ad-hoc runs: a method is a strategy with its options, model and training settings; only
    seeds of the same method are pooled. Where one strategy appears with several settings, each
    label names what differs (``naive (lr=1e10)``); a benchmark run with several option sets (e.g.
    other angles) likewise (``rotated-mnist (angles=[0, 45])``)."""
    def bench(r: RunResult) -> str:
        return str(r.config.get("benchmark", "stream"))

    def strategy(r: RunResult) -> str:
        return str(r.config.get("strategy", "run"))

    bench_labels = _difference_labels(results, bench, ("benchmark_options",))
    method_labels = _difference_labels(results, strategy, SETTING)
    out: Collected = {}
    for r in results:
        out.setdefault(bench_labels[id(r)], {}).setdefault(method_labels[id(r)], []).append(r)
    return out


def settings(r: RunResult, fields: tuple[str, ...]) -> dict[str, object]:
    """A run's settings under ``fields`` as flat ``name → value`` (train options without the seed,
    options of tables by their own names: ``lr``, ``lam``, ``hidden``)."""
    flat: dict[str, object] = {}
    for f in fields:
        value = r.config.get(f)
        if isinstance(value, dict):
            for k, v in value.items():
                if not (f == "train" and k == "seed"):
                    flat[f"{f}.{k}" if k in flat else k] = v  # a name in two tables: say which
        else:
            flat[f] = value
    return flat


def _value_text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}".replace("e+", "e")
    if value is None:
        return "default"
    return value if isinstance(value, str) else json.dumps(value)


def _difference_labels(results: list[RunResult], name: Callable[[RunResult], str],
                       fields: tuple[str, ...]) -> dict[int, str]:
    """``id(run)`` → its name, followed by ``(key=value, …)`` of the settings that differ between
    the runs of that name (nothing where they all agree; a short hash where no setting tells them
    apart, which a key of nested tables can need)."""
    by_name: dict[str, list[RunResult]] = {}
    for r in results:
        by_name.setdefault(name(r), []).append(r)
    labels: dict[int, str] = {}
    for base, runs in by_name.items():
        flats = [settings(r, fields) for r in runs]
        keys = sorted({k for f in flats for k in f})
        differ = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True, default=str)
                                          for f in flats}) > 1]
        for r, flat in zip(runs, flats):
            labels[id(r)] = base + (" (" + ", ".join(f"{k}={_value_text(flat.get(k))}" for k in differ)
                                    + ")" if differ else "")
        if len({labels[id(r)] for r in runs}) != len({_digest(f) for f in flats}):  # pragma: no cover
            for r, flat in zip(runs, flats):
                labels[id(r)] = f"{base}-{_digest(flat)}"
    return labels


def _digest(flat: dict[str, object]) -> str:
    return hashlib.sha1(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:6]


def protocol_text(train: dict) -> str:
    """The training protocol of a run's ``train`` settings (no seed; momentum only for SGD)."""
    unused = {"seed"} | ({"momentum"} if train.get("optimizer") == "adam" else set())  # SGD's only
    return ", ".join(f"{k}={_value_text(v)}" for k, v in train.items() if k not in unused)


def write_plots(folder: str | Path, collected: Collected | None = None) -> list[Path]:
    """Redraw every figure of a folder from its saved results; returns the files written."""
    folder = Path(folder)
    collected = collected or collect(folder)
    paths: list[Path] = []
    for bench, groups in collected.items():
        paths += save_figure(learning_curve(groups, f"{bench}: mean accuracy on tasks seen so far"),
                             folder / f"{safe_name(bench)}-curve")
        paths += save_figure(heatmaps(groups, f"{bench}: accuracy matrices (%)"),
                             folder / f"{safe_name(bench)}-heatmaps")
    return paths


def named_roles(folder: Path, collected: Collected) -> dict[str, Roles]:
    """Benchmark → its baseline and reference methods: a comparison's first method and the
    reference it names (``comparison.json``), else the one ``naive`` and one ``joint`` method."""
    baseline = reference = None
    if (folder / COMPARISON_FILE).exists():
        try:
            plan = json.loads((folder / COMPARISON_FILE).read_text())
            baseline = (plan.get("methods") or [None])[0]
            reference = plan.get("reference")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError):
            pass  # read_plan has already said what is wrong with it
    return {bench: roles(groups, baseline, reference) for bench, groups in collected.items()}


def write_report(folder: str | Path) -> str:
    """Figures, ``table.md``, ``table.csv``, ``seeds.csv`` and ``report.html``; returns the
    Markdown of ``table.md`` (the main table, then further metrics, differences to the baseline
    and scenarios side by side where there are any)."""
    folder = Path(folder)
    collected = collect(folder)
    named = named_roles(folder, collected)
    write_plots(folder, collected)
    table = report_markdown(collected, named)
    atomic_write(folder / "table.md", table)
    atomic_write(folder / "table.csv", csv_table(collected))
    atomic_write(folder / "seeds.csv", seeds_csv(collected, named))
    atomic_write(folder / "report.html", html_page(folder, collected, named))
    return table


def _png64(fig) -> str:
    """A figure as base64 PNG text (for one self-contained page)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode()


def _inline_svg(path: Path) -> str:
    text = path.read_text()
    return text[text.index("<svg"):]


def html_page(folder: Path, collected: Collected, named: dict[str, Roles] | None = None) -> str:
    """One self-contained page: inline SVG learning curves, base64 PNG heatmaps, tables."""
    named = named or {}
    parts = []
    first = next(iter(next(iter(collected.values())).values()))[0]
    env = first.environment
    cols = columns()
    for bench, groups in collected.items():
        slug = safe_name(bench)
        heat = "".join(f'<img alt="accuracy matrix of {html.escape(method)} on {html.escape(bench)}" '
                       f'src="data:image/png;base64,{_png64(heatmaps({method: runs}, method))}">'
                       for method, runs in groups.items())
        baseline = named.get(bench, Roles()).baseline
        rows = table_rows(groups, baseline)
        tested = any(k.endswith("_ns") for r in rows for k in r)
        head = ("<tr><th>method</th><th>seeds</th>"
                + "".join(f"<th>{html.escape(c.title)}</th>" for c in cols) + "</tr>")
        body = "".join(f"<tr><td>{html.escape(r['method'])}</td><td>{r['seeds']}</td>"
                       + "".join(f"<td>{html.escape(c.cell(r))}</td>" for c in cols) + "</tr>" for r in rows)
        parts.append(
            f'<section><h2>{html.escape(bench)}</h2>'
            f'<figure class="learning-curve" id="learning-curve-{slug}">'
            f'{_inline_svg(folder / f"{slug}-curve.svg")}<figcaption>Mean accuracy over the tasks '
            f'seen so far after every epoch; dotted lines mark a new task.'
            f'{" Bands: 95% confidence interval over seeds." if len(rows) and rows[0]["seeds"] > 1 else ""}'
            f'</figcaption></figure>'
            f'<div style="overflow-x:auto"><table class="results" id="results-{slug}">'
            f'<thead>{head}</thead><tbody>{body}</tbody></table></div>'
            f'{f"<p class=note>{html.escape(significance_note(str(baseline)))}</p>" if tested else ""}'
            f'<figure class="heatmaps"><div class="panels">{heat}</div><figcaption>One accuracy '
            f'matrix per method (mean over seeds), at full size: row i: after training task i; column '
            f'j: accuracy on task j.</figcaption></figure></section>')
    protocols: dict[str, list[str]] = {}
    for bench, groups in collected.items():
        for method, runs in groups.items():
            for r in runs:
                label = method if len(collected) == 1 else f"{bench}: {method}"
                names = protocols.setdefault(protocol_text(r.config.get("train") or {}), [])
                if label not in names:
                    names.append(label)
    if len(protocols) == 1:
        protocol = f"<p>Protocol: {html.escape(next(iter(protocols)))}."
    else:  # one line per protocol, naming the methods trained under it
        protocol = "<p>Protocols (the runs differ):</p><ul>" + "".join(
            f"<li>{html.escape(text)}: {html.escape(', '.join(names))}</li>"
            for text, names in protocols.items()) + "</ul><p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lifelong comparison</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}}
svg,img{{max-width:100%;height:auto}} figure.learning-curve svg{{width:100%}}
table{{border-collapse:collapse;margin:1em 0}} td:first-child{{text-align:left}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right;white-space:nowrap}}
figcaption{{color:#555;font-size:.9em}} .panels{{display:flex;flex-wrap:wrap;gap:.5em}}
figure.heatmaps img{{width:420px}}</style></head><body>
<h1>lifelong comparison</h1>
{protocol} Environment: Python {env.get("python", "?")}, torch
{env.get("torch", "?")}, device {env.get("device", "?")}.</p>
{"".join(parts)}
<p>{html.escape(key_text())}. With several seeds: mean ± 95% confidence interval (Student's t).</p>
{"".join(t.html() for t in extra_tables(collected, named))}
<script>/* marks what the browser rendered (checked by the test suite in headless Chromium) */
window.addEventListener("load", () => {{
  for (const f of document.querySelectorAll("figure.learning-curve")) {{
    const box = f.querySelector("svg").getBoundingClientRect();
    f.dataset.rendered = Math.round(box.width) + "x" + Math.round(box.height);
  }}
  for (const img of document.querySelectorAll("figure.heatmaps img"))
    img.dataset.rendered = img.naturalWidth + "x" + img.naturalHeight;
}});</script>
</body></html>
"""
