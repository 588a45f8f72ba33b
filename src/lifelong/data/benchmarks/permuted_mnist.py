"""``permuted-mnist``: every task shuffles the pixels by its own fixed permutation."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...registry import BENCHMARKS
from ..datasets import load_dataset
from ..streams import Stream, Task
from ..transforms import permute, pixel_permutation, random_subset
from .common import check_memory, check_option_count, check_scenario, check_seed, normalizer, num_classes


@BENCHMARKS.register("permuted-mnist", "digits with a fixed random pixel permutation per task")
def permuted(
    n_tasks: int = 5,
    source: str | None = "mnist5k",
    arrays=None,
    train_per_task: int | None = None,
    scenario: str = "domain",
    seed: int = 0,
    dataset: str | None = None,
    class_names: Sequence[str] | None = None,
    layout: str | None = None,
    normalize: bool | None = None,
) -> Stream:
    """Task t shuffles the pixels of every image by its own permutation (seeded by ``seed``).

    The data options are ``rotated``'s; the stream is ``permuted-<dataset>``, task t ``perm<t>``.
    Never augmented by default: crops and flips of shuffled pixels mean nothing.
    """
    check_scenario(scenario, ("domain", "task"), "permuted-mnist")
    check_option_count("n_tasks", n_tasks)
    check_option_count("train_per_task", train_per_task, allow_none=True)
    data = load_dataset(source, arrays, dataset, class_names, layout)
    xtr, ytr, xte, yte = data.x_train, data.y_train, data.x_test, data.y_test
    check_memory("permuted-mnist", n_tasks, xtr, xte, train_per_task)
    check_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    norm, meta = normalizer(data, normalize)
    classes = tuple(range(num_classes(ytr)))
    num_pixels = xtr[0].numel()
    tasks = []
    for t in range(n_tasks):
        perm = pixel_permutation(num_pixels, seed * 1000 + t)
        x, y = random_subset(xtr, ytr, train_per_task, gen)
        tasks.append(Task(t, f"perm{t}", norm(permute(x, perm)), y, norm(permute(xte, perm)), yte, classes))
    return Stream(f"permuted-{data.name}", tasks, scenario, tuple(xtr.shape[1:]), len(classes), meta=meta)
