"""Time of each rehearsal baseline against replay's, in one process on the same stream.

Class-incremental split MNIST (the embedded digits, 5 tasks of 2), MLP 400-400, Adam 1e-3,
batch 128, ``--epochs`` per task, ``eval_every_epoch=False``, buffer ``--buffer`` examples, seed
0: the whole ``lifelong.fit`` of each method (training, after-task work such as iCaRL's herding,
BiC's bias fit or GDumb's retraining, and the evaluation after each task, the same for all),
``--rounds`` interleaved rounds, the median per method. Goal (issue 15): each ≤ 2× replay.

    OMP_NUM_THREADS=1 python benchmarks/rehearsal_cost.py --epochs 10 --rounds 3

``--tuned`` also times each method with the values chosen on validation data
(``rehearsal_tuning.CHOSEN``: its learning rate and replay batch size), labelled "(tuned)".
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

import lifelong

METHODS = ["naive", "replay", "er-ace", "der", "derpp", "icarl", "bic", "gdumb", "gem"]


def fit_seconds(stream, method: str, buffer: int, config: lifelong.TrainConfig,
                tuned: dict | None = None) -> float:
    torch.manual_seed(config.seed)
    model = lifelong.make_model("mlp", stream.input_shape, stream.num_classes, hidden=[400, 400])
    options = {} if method == "naive" else (
        {"memory_per_task": buffer // len(stream)} if method == "gem" else {"buffer_size": buffer})
    if tuned:
        tuned = dict(tuned)
        config = dataclasses.replace(config, lr=tuned.pop("lr"))
        options.update(tuned)
    strategy = lifelong.make_strategy(method, **options)
    start = time.perf_counter()
    lifelong.fit(stream, model, strategy, config)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--buffer", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--tuned", action="store_true", help="also the values chosen on validation data")
    args = parser.parse_args()
    chosen = {}
    if args.tuned:
        from rehearsal_tuning import CHOSEN  # this folder's script

        chosen = {f"{m} (tuned)": (m, values) for m, values in CHOSEN.items() if m in args.methods}
    torch.set_num_threads(1)
    stream = lifelong.make_benchmark("split-mnist", scenario="class")
    config = lifelong.TrainConfig(optimizer="adam", lr=1e-3, batch_size=128, epochs=args.epochs,
                                  eval_every_epoch=False, seed=0, device="cpu")
    runs = {m: (m, None) for m in args.methods} | chosen
    times: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(args.rounds):
        for label, (method, tuned) in runs.items():
            times[label].append(fit_seconds(stream, method, args.buffer, config, tuned))
    replay = statistics.median(times["replay"])
    print(f"| method | seconds (median of {args.rounds}) | × replay | rounds |")
    print("|---|---:|---:|---|")
    for method, values in times.items():
        median = statistics.median(values)
        print(f"| {method} | {median:.2f} | {median / replay:.2f} | "
              + " / ".join(f"{v:.2f}" for v in values) + " |")


if __name__ == "__main__":
    main()
