"""Quality of the importance-based regularisers on the homework protocol.

Rotated MNIST (the embedded 5,000 digits, 5 tasks at 0–80°), MLP 1024-512-256, preset
``homework`` (Adam 1e-4, batch 128, 10 epochs, fresh optimiser per task): R, ACC, BWT and FWT
of naive, joint and the seven methods, mean over seeds; goals: every method beats naive on ACC
and BWT, and the best comes within 5 points of joint.

    python benchmarks/regularisation_quality.py                      # seeds 0 1 2, all methods
    python benchmarks/regularisation_quality.py --seeds 0 --out q.json
    python benchmarks/regularisation_quality.py --hparams course     # the course's values
    python benchmarks/regularisation_quality.py --report a.json b.json  # re-print, merged

``--search`` runs the reduced hyper-parameter search behind the defaults instead: λ grids per
method, 3 epochs per task, seed 0, on a validation split (1,000 of the 4,000 training digits,
100 per class; the test digits are never seen), ranked by ACC. ``--epochs``, ``--lams`` and
``--param key=value`` (e.g. ``merge=mean``) narrow or extend it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import lifelong
from lifelong.data.sources import load_mnist5k, stratified_split
from lifelong.models import make_model
from lifelong.strategies import make_strategy
from lifelong.strategies.importance import hyperparameter_preset

METHODS = ["naive", "joint", "l2", "ewc", "online-ewc", "mas", "si", "rwalk", "scp", "kfac"]
SEARCH_GRID = {
    "l2": [0.01, 0.1, 0.3, 1.0],
    "ewc": [100.0, 300.0, 1000.0, 10000.0],
    "online-ewc": [100.0, 300.0, 1000.0, 10000.0],
    "mas": [0.1, 0.3, 1.0, 10.0],
    "si": [100.0, 1000.0, 3000.0, 10000.0, 100000.0],
    "rwalk": [100.0, 1000.0, 3000.0, 10000.0, 30000.0, 100000.0, 1000000.0],
    "scp": [100.0, 1000.0, 3000.0, 10000.0],
    "kfac": [1.0, 3.0, 5.0, 10.0],
}
"""λ values tried by ``--search``: three decades around 1 / (mean Ω after one task), extended
upwards where the best sat at the top (SI, RWalk), then the half-decade (×√10 ≈ 3) between the
best and its better neighbour (RWalk: both sides). kfac's grid was run at 10 epochs (``--epochs 10``)."""


def one_run(method: str, seed: int, epochs: int, params: dict, validation: bool) -> dict:
    options = {}
    if validation:
        xtr, ytr, _, _ = load_mnist5k()
        fit_idx, val_idx = stratified_split(ytr.numpy(), test_per_class=100, seed=0)
        fit_idx, val_idx = torch.from_numpy(fit_idx), torch.from_numpy(val_idx)
        options["arrays"] = (xtr[fit_idx], ytr[fit_idx], xtr[val_idx], ytr[val_idx])
    stream = lifelong.make_benchmark("rotated-mnist", **options)
    torch.manual_seed(seed)
    model = make_model("mlp", stream.input_shape, stream.num_classes, hidden=(1024, 512, 256))
    strategy = make_strategy(method, **params)
    config = lifelong.preset("homework", epochs=epochs, seed=seed, device="cpu",
                             eval_every_epoch=False)
    start = time.perf_counter()
    _, result = lifelong.fit(stream, model, strategy, config)
    m = result.metrics
    return {"method": method, "seed": seed, "params": params, "R": result.accuracy_matrix,
            "acc": m["acc"], "bwt": m["bwt"], "fwt": m["fwt"],
            "seconds": time.perf_counter() - start, "train_seconds": sum(result.task_times)}


def parse_param(text: str) -> tuple[str, object]:
    """``key=value`` with the value read as JSON where it parses (numbers), else a string."""
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def mean(rows: list[dict], key: str) -> float:
    return statistics.fmean(r[key] for r in rows)


def report(runs: list[dict]) -> None:
    print(f"{'method':<11}{'ACC':>8}{'BWT':>8}{'FWT':>8}{'sd ACC':>8}{'s/run':>8}  params")
    for method in dict.fromkeys(r["method"] for r in runs):
        rows = [r for r in runs if r["method"] == method]
        sd = statistics.stdev(r["acc"] for r in rows) if len(rows) > 1 else 0.0
        print(f"{method:<11}{100 * mean(rows, 'acc'):8.2f}{100 * mean(rows, 'bwt'):8.2f}"
              f"{100 * mean(rows, 'fwt'):8.2f}{100 * sd:8.2f}{mean(rows, 'seconds'):8.1f}  "
              f"{rows[0]['params']}")
        size = len(rows[0]["R"])
        for i in range(size):
            cells = [statistics.fmean(r["R"][i][j] for r in rows) for j in range(size)]
            print(f"    R[{i}] " + " ".join(f"{100 * v:5.1f}" for v in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--epochs", type=int, default=None, help="default 10 (3 with --search)")
    parser.add_argument("--hparams", default=None, help="a preset of importance.py (course, tuned)")
    parser.add_argument("--search", action="store_true", help="run the λ search instead")
    parser.add_argument("--lams", type=float, nargs="+", help="--search: these λ only")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="--search: a fixed hyper-parameter for every run, e.g. merge=mean")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="regularisation_quality.json")
    parser.add_argument("--report", nargs="+", metavar="JSON",
                        help="only print the table of earlier outputs (later files win)")
    args = parser.parse_args()
    if args.report:
        merged = {}
        for path in args.report:
            for run in json.loads(Path(path).read_text())["runs"]:
                merged[(run["method"], run["seed"])] = run
        order = {m: i for i, m in enumerate(METHODS)}
        report(sorted(merged.values(), key=lambda r: (order.get(r["method"], 99), r["seed"])))
        return
    torch.set_num_threads(args.threads)
    runs: list[dict] = []
    jobs = []
    if args.search:
        epochs = args.epochs or 3
        for method in args.methods:
            grid = args.lams or SEARCH_GRID.get(method, [None])
            fixed = dict(parse_param(p) for p in args.param)
            jobs += [(method, 0, fixed if lam is None else {**fixed, "lam": lam}) for lam in grid]
    else:
        epochs = args.epochs or 10
        for seed in args.seeds:
            for method in args.methods:
                params = hyperparameter_preset(args.hparams, method) if args.hparams else {}
                jobs.append((method, seed, params))
    for method, seed, params in jobs:
        run = one_run(method, seed, epochs, params, validation=args.search)
        runs.append(run)
        print(f"{method} seed {seed} {params}: ACC {100 * run['acc']:.2f} BWT "
              f"{100 * run['bwt']:.2f} FWT {100 * run['fwt']:.2f} ({run['seconds']:.0f}s)",
              flush=True)
        Path(args.out).write_text(json.dumps({"epochs": epochs, "search": args.search,
                                              "runs": runs}, indent=1))
    if args.search:
        for run in runs:
            extra = "".join(f",{k}={v}" for k, v in run["params"].items() if k != "lam")
            run["method"] = f"{run['method']}:{run['params'].get('lam', '')}{extra}"
    report(runs)


if __name__ == "__main__":
    main()
