"""The report, from saved results only: tables with t-intervals, figures, an offline HTML page
that a real headless browser renders."""

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from lifelong.cli import main
from lifelong.plots import seen_mean_series
from lifelong.report import collect, csv_table, markdown_table, write_report
from lifelong.results import RunResult, save_result

T, EPOCHS = 3, 2


def fake_result(strategy: str, seed: int, final: list[float]) -> RunResult:
    """A saved run as `lifelong run` writes it, with a chosen last row of R."""
    R = [[0.9, 0.1, 0.1], [0.6, 0.9, 0.2], final]
    curve = [{"task": t, "epoch": e, "loss": 1.0, "seen_mean": 0.5 + 0.1 * t + 0.01 * e,
              "accuracy": [0.5] * (t + 1)} for t in range(T) for e in range(1, EPOCHS + 1)]
    from lifelong.metrics import all_metrics

    return RunResult(
        run_id=f"rotated-mnist-{strategy}-s{seed}-x", task_names=["rot0", "rot45", "rot90"],
        config={"benchmark": "rotated-mnist", "strategy": strategy, "strategy_options": {},
                "model": "mlp", "model_options": {}, "train": {"seed": seed, "epochs": EPOCHS}},
        initial_accuracy=[0.1, 0.1, 0.1], accuracy_matrix=R,
        metrics=all_metrics(R, [0.1, 0.1, 0.1]), curve=curve, task_times=[1.0] * T,
        wall_time=10.0 + seed, memory_bytes=[0, 1_000_000, 2_000_000],
        model_sizes=[{"parameters": 660, "bytes": 2640}] * T)


@pytest.fixture
def runs_folder(tmp_path):
    for seed, final in ((0, [0.8, 0.8, 0.9]), (1, [0.9, 0.9, 0.9])):
        save_result(fake_result("ewc", seed, final), tmp_path / f"ewc-{seed}")
    save_result(fake_result("naive", 0, [0.3, 0.6, 0.9]), tmp_path / "naive-0")
    return tmp_path


def test_table_has_mean_and_t_interval_over_seeds(runs_folder):
    collected = collect(runs_folder)
    assert list(collected) == ["rotated-mnist"] and sorted(collected["rotated-mnist"]) == ["ewc", "naive"]
    table = markdown_table(collected)
    # ewc ACC: seeds 0.8333… and 0.9 → mean 0.86667, s = 0.04714, half = 12.706205·s/√2 = 0.42354
    assert "| rotated-mnist | ewc | 2 | 86.67 ± 42.35 |" in table
    # BWT (T=3): seed 0 ((0.8-0.9)+(0.8-0.9))/2 = -0.1; seed 1: 0.0 → -5.00 ± 63.53
    assert "-5.00 ± 63.53" in table
    assert "| rotated-mnist | naive | 1 | 60.00 | -45.00 |" in table  # one seed: no interval
    assert "| 10.5 ± 6.4 | 2.00 | 660 |" in table  # time 10, 11 s; memory 2 MB at the end
    rows = csv_table(collected).splitlines()
    assert rows[0].startswith("benchmark,method,seeds,acc,acc_ci95,bwt,bwt_ci95")
    ewc = rows[1].split(",")
    assert float(ewc[3]) == pytest.approx(0.866667, abs=1e-6)
    assert float(ewc[4]) == pytest.approx(12.706205 * 0.0471405 / 2**0.5, abs=1e-5)


def test_curve_points_sit_inside_their_task(runs_folder):
    x, y = seen_mean_series(fake_result("naive", 0, [0.3, 0.6, 0.9]))
    assert list(x) == [0.25, 0.75, 1.25, 1.75, 2.25, 2.75]
    assert y[0] == pytest.approx(0.51) and y[-1] == pytest.approx(0.72)


def test_report_command_redraws_everything_from_saved_results(runs_folder, capsys):
    assert main(["report", str(runs_folder)]) == 0
    printed = capsys.readouterr().out
    assert "| rotated-mnist | ewc | 2 |" in printed and "report.html" in printed
    for name in ("rotated-mnist-curve.png", "rotated-mnist-curve.svg", "rotated-mnist-heatmaps.png",
                 "rotated-mnist-heatmaps.svg", "table.md", "table.csv", "report.html"):
        assert (runs_folder / name).stat().st_size > 0
    assert (runs_folder / "rotated-mnist-curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (runs_folder / "report.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//|url\((?!#)|<link', page)  # offline: fetches nothing
    assert re.search(r'<img [^>]*src="data:image/png;base64,', page)
    assert '<figure class="learning-curve" id="learning-curve-rotated-mnist"><svg' in page


def test_report_of_an_empty_folder_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: no results in")


def test_report_reads_one_run_directory(runs_folder):
    table = write_report(runs_folder / "naive-0")
    assert "| naive | 1 |" in table and (runs_folder / "naive-0" / "report.html").exists()


class Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.found = [], []

    def handle_starttag(self, tag, attrs):
        self.stack.append((tag, dict(attrs)))
        self.found.append((tag, dict(attrs), [t for t, _ in self.stack]))

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data):
        if self.stack and self.stack[-1][0] == "td":
            self.found.append(("text", {"data": data}, [t for t, _ in self.stack]))


def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))
                 if p), None)


@pytest.mark.skipif(chromium() is None, reason="Chromium not installed (.ci/run installs it)")
def test_report_renders_in_a_headless_browser(runs_folder, tmp_path_factory):
    write_report(runs_folder)
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={profile}", "--dump-dom", (runs_folder / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = Dom()
    dom.feed(proc.stdout)
    figures = [a for t, a, _ in dom.found if t == "figure" and "learning-curve" in a.get("class", "")]
    assert len(figures) == 1
    width, height = map(int, figures[0]["data-rendered"].split("x"))  # set by the page on load
    assert width > 300 and height > 150  # the inline SVG was laid out at a real size
    heat = [a for t, a, _ in dom.found if t == "img" and "data-rendered" in a]
    assert heat and all(int(a["data-rendered"].split("x")[0]) > 300 for a in heat)  # PNG decoded
    cells = [a["data"] for t, a, path in dom.found if t == "text" and "table" in path]
    assert "ewc" in cells and "naive" in cells and "86.67 ± 42.35" in cells
    assert json.dumps(cells)  # plain text, nothing unrendered


def test_runs_with_other_train_settings_are_not_pooled_as_seeds(tmp_path):
    short = fake_result("naive", 1, [0.3, 0.6, 0.9])
    short.config["train"] = {"seed": 1, "epochs": 1}
    save_result(short, tmp_path / "naive-short")
    save_result(fake_result("naive", 0, [0.3, 0.6, 0.8]), tmp_path / "naive-long")
    methods = collect(tmp_path)["rotated-mnist"]
    assert len(methods) == 2 and all(len(runs) == 1 for runs in methods.values())


def test_seeds_csv_has_one_row_per_run_and_table_csv_no_interval_for_one_seed(runs_folder):
    import csv
    import io

    main(["report", str(runs_folder)])
    rows = list(csv.DictReader(io.StringIO((runs_folder / "seeds.csv").read_text())))
    assert sorted((r["method"], r["seed"]) for r in rows) == [("ewc", "0"), ("ewc", "1"), ("naive", "0")]
    ewc0 = next(r for r in rows if r["method"] == "ewc" and r["seed"] == "0")
    assert float(ewc0["acc"]) == pytest.approx((0.8 + 0.8 + 0.9) / 3) and float(ewc0["wall_time_s"]) == 10.0
    table = {r["method"]: r for r in csv.DictReader(io.StringIO((runs_folder / "table.csv").read_text()))}
    assert table["naive"]["acc_ci95"] == "" and float(table["ewc"]["acc_ci95"]) > 0


def test_the_protocol_line_shows_momentum_only_for_sgd(tmp_path):
    for optimizer in ("adam", "sgd"):
        folder = tmp_path / optimizer
        result = fake_result("naive", 0, [0.3, 0.6, 0.9])
        result.config["train"] = {"seed": 0, "epochs": EPOCHS, "optimizer": optimizer, "momentum": 0.9}
        save_result(result, folder / "naive-0")
        main(["report", str(folder)])
        page = (folder / "report.html").read_text()
        assert ("momentum=0.9" in page) == (optimizer == "sgd")


def test_the_table_is_the_homework_table_byte_for_byte(runs_folder):
    """Columns, order, numbers and formats of the built-in metrics, and the key under the table."""
    table = markdown_table(collect(runs_folder))
    assert table == (
        "| benchmark | method | seeds | ACC (%) | BWT (%) | FWT (%) | forgetting (%) | wall time (s) "
        "| memory (MB) | parameters |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        "| rotated-mnist | ewc | 2 | 86.67 ± 42.35 | -5.00 ± 63.53 | 5.00 ± 0.00 | 5.00 ± 63.53 | 10.5 ± 6.4 "
        "| 2.00 | 660 |\n"
        "| rotated-mnist | naive | 1 | 60.00 | -45.00 | 5.00 | 45.00 | 10.0 | 2.00 | 660 |\n"
        "\nmean ± 95% confidence interval over seeds (Student's t)\n\n"
        "ACC: mean accuracy over all tasks after the last · BWT: mean change on each earlier task since "
        "just after learning it (negative: forgetting) · FWT: accuracy on each task before training on "
        "it, minus the untrained model's · forgetting: mean drop from each earlier task's best accuracy "
        "· wall time: the whole run, evaluation included · memory: learned state kept between tasks "
        "(stored examples, importances, old weights) · parameters: the model's size at the end "
        "(README, Metrics)\n")
    assert csv_table(collect(runs_folder)).splitlines()[0] == (
        "benchmark,method,seeds,acc,acc_ci95,bwt,bwt_ci95,fwt,fwt_ci95,forgetting,forgetting_ci95,"
        "wall_time_s,wall_time_s_ci95,memory_mb,parameters")


def test_a_metric_that_needs_a_missing_reference_run_is_a_blank_cell(runs_folder):
    from lifelong.metrics import METRICS

    @METRICS.register("ref", label="REF", needs_reference=True, meaning="a reference's metric")
    def ref(R, reference):
        return 0.0

    try:
        table = markdown_table(collect(runs_folder))
        rows = csv_table(collect(runs_folder)).splitlines()
    finally:
        METRICS.unregister("ref")
    assert "| forgetting (%) | REF (%) | wall time (s) |" in table
    assert "| 60.00 | -45.00 | 5.00 | 45.00 |  | 10.0 |" in table
    assert rows[0].split(",")[11:13] == ["ref", "ref_ci95"] and rows[2].split(",")[11:13] == ["", ""]


def test_a_report_of_mixed_runs_names_what_differs_and_each_protocol(tmp_path):
    """Runs of one strategy under other settings: labelled by the settings that differ, never by a
    hash, and the page writes one protocol line per protocol (issue 18, item 6)."""
    for seed in (0, 1):
        save_result(fake_result("naive", seed, [0.3, 0.6, 0.9]), tmp_path / f"naive-{seed}")
    odd = fake_result("naive", 0, [0.1, 0.1, 0.1])
    odd.config["train"] = {"seed": 0, "epochs": EPOCHS, "lr": 1e10, "optimizer": "sgd", "momentum": 0.0}
    save_result(odd, tmp_path / "naive-lr")
    wide = fake_result("ewc", 0, [0.5, 0.5, 0.5])
    wide.config["benchmark_options"] = {"angles": [0, 45]}
    save_result(wide, tmp_path / "ewc-wide")
    save_result(fake_result("ewc", 0, [0.5, 0.5, 0.6]), tmp_path / "ewc-0")
    collected = collect(tmp_path)
    assert sorted(collected) == ["rotated-mnist (angles=[0, 45])", "rotated-mnist (angles=default)"]
    plain = collected["rotated-mnist (angles=default)"]
    assert sorted(plain) == ["ewc", "naive (lr=1e10, momentum=0, optimizer=sgd)",
                             "naive (lr=default, momentum=default, optimizer=default)"]
    assert [len(runs) for _, runs in sorted(plain.items())] == [1, 1, 2]  # seeds 0 and 1 pooled
    main(["report", str(tmp_path)])
    page = (tmp_path / "report.html").read_text()
    assert "<li>epochs=2: " in page and "<li>epochs=2, lr=1e10, optimizer=sgd, momentum=0: " in page
    assert not re.search(r"naive-[0-9a-f]{6}", page)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_heatmaps_name_the_tasks_and_their_colour_bar_sits_beside_them(k):
    """Issue 18, item 10: task names as in the curve, the colour bar within a quarter inch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from lifelong.plots import heatmaps

    fig = heatmaps({f"m{i}": [fake_result("naive", 0, [0.3, 0.6, 0.9])] for i in range(k)})
    FigureCanvasAgg(fig).draw()
    (bar,) = [a for a in fig.axes if a.get_ylabel() == "accuracy (%)"]
    panels = [a for a in fig.axes if a is not bar and a.get_visible()]
    assert len(panels) == k
    gap = (bar.get_position().x0 - max(a.get_position().x1 for a in panels)) * fig.get_size_inches()[0]
    assert 0 < gap <= 0.3
    for ax in panels:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["rot0", "rot45", "rot90"]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["rot0", "rot45", "rot90"]


def test_the_curve_has_a_tick_per_epoch():
    from lifelong.plots import learning_curve

    ax = learning_curve({"naive": [fake_result("naive", 0, [0.3, 0.6, 0.9])]}).axes[0]
    assert list(ax.get_xticks(minor=True)) == pytest.approx([0.25, 0.75, 1.25, 1.75, 2.25, 2.75])
    assert [t.get_text() for t in ax.get_xticklabels(minor=True)] == ["1", "2"] * 3
    assert [t.get_text() for t in ax.get_xticklabels()] == ["task 1\nrot0", "task 2\nrot45", "task 3\nrot90"]


def test_the_page_shows_one_heatmap_per_method(runs_folder):
    main(["report", str(runs_folder)])
    page = (runs_folder / "report.html").read_text()
    figure = page[page.index('<figure class="heatmaps">'):]
    figure = figure[:figure.index("</figure>")]
    alts = re.findall(r'<img alt="accuracy matrix of ([^"]+) on rotated-mnist" '
                      r'src="data:image/png;base64,', figure)
    assert alts == ["ewc", "naive"]
