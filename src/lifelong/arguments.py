"""The command line's options: ``lifelong run`` and ``lifelong compare`` (``cli`` wires the commands)."""

from __future__ import annotations

import argparse

DEFAULT_OUT = "runs"
MODEL_HELP = "model name: mlp (default), cnn, resnet18-reduced, resnet18 (see `lifelong list`)"


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``lifelong run``."""
    p.add_argument("--benchmark", help="stream name (see `lifelong list`)")
    p.add_argument("--strategy", help="method name (see `lifelong list`), or several joined by + "
                   "(ewc+replay: combined, options as --param ewc.lam=1000)")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--preset", help="training protocol: homework (default) or gem")
    p.add_argument("--hparams", help="hyper-parameter preset of the methods (course, tuned or fast), or a "
                   "best.json written by `lifelong tune`")
    p.add_argument("--optimizer", help="adam or sgd")
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--epochs", type=int, help="epochs per task")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--scenario", help="task, domain or class (where the benchmark allows)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="strategy hyper-parameter (MEMBER.KEY=VALUE for a member of a combination)")
    p.add_argument("--bopt", action="append", metavar="KEY=VALUE",
                   help="benchmark option, e.g. angles=0,45,90 or n_tasks=10 (see docs/compare.md)")
    p.add_argument("--mopt", action="append", metavar="KEY=VALUE", help="model option, e.g. hidden=[256,128]")
    p.add_argument("--out", default=DEFAULT_OUT, help="folder for run directories (default: runs)")
    p.add_argument("--force", action="store_true", help="retrain even if a finished run exists")
    p.add_argument("--threads", type=int, help=THREADS_HELP)
    add_augment_argument(p)


def add_augment_argument(p: argparse.ArgumentParser) -> None:
    """``--augment`` / ``--no-augment``: random crop and flip of the training batches, or not
    (default: the stream's own, on for CIFAR and off for digits)."""
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random crop (4 pixels of black padding) and horizontal flip of the training "
                   "batches, or not (default: the stream's, on for CIFAR, off for digits; see "
                   "docs/augmentation.md)")


DATA_HELP = ("a folder of MNIST-format IDX files or of CIFAR-10/100's binary release, or an .npz file "
             "(default: the embedded 5,000 digits; see `lifelong list`)")
THREADS_HELP = ("torch threads (default: torch's, at most the cores this process may use); another "
                "count can change the last digits of results")


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its usage errors in one line (the usage block stays in ``--help``)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``lifelong compare``."""
    p.add_argument("config", nargs="?", help="a TOML file describing the comparison")
    p.add_argument("--benchmark", nargs="+", help="one or more stream names")
    p.add_argument("--strategies", nargs="+", help="method names (default: the homework's)")
    p.add_argument("--seeds", nargs="+", type=int, help="seeds, e.g. --seeds 0 1 2")
    p.add_argument("--param", action="append", metavar="STRATEGY.KEY=VALUE",
                   help="hyper-parameter of one method, e.g. ewc.lam=100")
    for flag, text in (("--model", MODEL_HELP),
                       ("--preset", "training protocol: homework (default) or gem"),
                       ("--hparams", "methods' hyper-parameter preset: tuned (default), course or fast, "
                        "or a best.json written by `lifelong tune` (values per strategy)"),
                       ("--optimizer", "adam or sgd"), ("--device", "auto, cpu or cuda"),
                       ("--data", DATA_HELP)):
        p.add_argument(flag, help=text)
    p.add_argument("--scenario", nargs="+", help="domain, task or class (what the benchmark allows); "
                   "several (--scenario task domain class) run each benchmark in each, side by side")
    p.add_argument("--reference", metavar="LABEL", help="the method intransigence is measured against "
                   "(default: the comparison's joint)")
    p.add_argument("--vary", nargs="+", choices=["stream"], help="stream: each seed also draws its own "
                   "stream (the benchmark's seed: split MNIST's class order, rotated MNIST's angle order, "
                   "permuted MNIST's permutations)")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--epochs", type=int, help="epochs per task")
    p.add_argument("--bopt", action="append", metavar="KEY=VALUE",
                   help="benchmark option, e.g. angles=0,45,90 or n_tasks=10 (see docs/compare.md)")
    p.add_argument("--mopt", action="append", metavar="KEY=VALUE", help="model option, e.g. hidden=[256,128]")
    p.add_argument("--out", default="runs/compare", help="report folder (default: runs/compare)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel on this machine")
    p.add_argument("--threads", type=int, help=THREADS_HELP + " (with --jobs 1)")
    p.add_argument("--executor", default="local", help="local (default) or ray")
    p.add_argument("--force", action="store_true", help="retrain runs that are already finished, and "
                   "replace another comparison (its plan and report) in --out")
    p.add_argument("--tensorboard", action="store_true",
                   help="also log per-epoch scalars to OUT/tensorboard (needs tensorboard)")
    add_augment_argument(p)


def add_tune_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``lifelong tune``."""
    p.add_argument("config", nargs="?", help="a TOML file describing the tuning (docs/tuning.md)")
    p.add_argument("--strategy", help="the method to tune (see `lifelong list`)")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2",
                   help="values to try for a hyper-parameter or train option (lr), replacing the method's "
                   "default values for KEY; KEY=LOW..HIGH or KEY=log:LOW..HIGH: a range, with --random")
    p.add_argument("--random", type=int, metavar="N", help="N random points of the space instead of the grid")
    p.add_argument("--search-seed", type=int, dest="search_seed",
                   help="seed of the random points (default 0)")
    p.add_argument("--protocol", help="validation (default: every task, scored on a part of its training "
                   "data) or first-tasks (the first --tasks tasks only; Chaudhry et al. 2019)")
    p.add_argument("--validation", type=float, metavar="FRACTION",
                   help="share of each class of each task's training data held out to score (default 0.1)")
    p.add_argument("--tasks", type=int, help="first-tasks: how many first tasks (default 3)")
    p.add_argument("--split-seed", type=int, dest="split_seed",
                   help="seed of the validation split (default 0)")
    p.add_argument("--metric", help="registered metric to rank by (default acc; see `lifelong list`)")
    p.add_argument("--seeds", nargs="+", type=int, help="seeds; points are ranked by the mean over them")
    p.add_argument("--benchmark", help="stream name (see `lifelong list`)")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--preset", help="training protocol: homework (default) or gem")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="a hyper-parameter fixed, not searched")
    for flag in ("--optimizer", "--device", "--data", "--scenario"):
        p.add_argument(flag)
    p.add_argument("--lr", type=float, help="learning rate (fixed; search it with --grid lr=…)")
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--epochs", type=int, help="epochs per task")
    p.add_argument("--bopt", action="append", metavar="KEY=VALUE", help="benchmark option")
    p.add_argument("--mopt", action="append", metavar="KEY=VALUE", help="model option")
    p.add_argument("--out", default="runs/tune",
                   help="folder for the trials and best.json (default: runs/tune)")
    p.add_argument("--jobs", type=int, default=1, help="trials in parallel on this machine")
    p.add_argument("--threads", type=int, help=THREADS_HELP + " (with --jobs 1)")
    p.add_argument("--executor", default="local", help="local (default) or ray")
    p.add_argument("--force", action="store_true", help="retrain trials that are already finished")
    add_augment_argument(p)
