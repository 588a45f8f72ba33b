"""GDumb (Prabhu, Torr & Dokania, ECCV 2020, "GDumb: A simple approach that questions our progress
in continual learning").

GDumb does not learn from the stream. A greedy sampler (the paper's Alg. 1) keeps a class-balanced
memory of at most k = ``buffer_size`` examples as they stream by, and before every evaluation the
model is re-initialised and trained from scratch on the memory alone. The sampler, for each
incoming example (x, y), with D_c the stored examples of class c and Y the classes seen so far
(y included):

    if |D_y| < k / |Y|:                         the class is below its share of the memory
        if Σ_c |D_c| ≥ k:                        memory full: make room
            c_max = argmax_c |D_c|;  remove a uniformly random example of D_{c_max}
        D_y ← D_y ∪ {(x, y)}

so a new class always gets in, taking its room from the largest class (ties: the smallest label),
and the memory tends to k / |Y| examples per class. Examples go through it one at a time in the
order of the task's training data (``gdumb_add``; a short Python loop over integer bookkeeping).

Training: the loop's own epochs on a task pass over no data (``train_data`` is empty, so no step is
taken there); in ``after_task`` the memory is offered every example of the task, every submodule
with a ``reset_parameters()`` method (``nn.Linear``, ``nn.Conv2d``, ``nn.BatchNorm``, …) is
re-initialised under ``torch.random.fork_rng`` seeded from the run's seed and the task id (same
seed → same numbers, and the global RNG is left as it was), and the loop's lent
``train(memory, epochs, seed)`` trains it on the memory for ``epochs`` epochs (None: the run's
epochs per task) with a fresh optimiser. A user module that holds parameters of its own but has
no ``reset_parameters`` keeps its weights from before (it is not re-initialised).

The accuracy matrix is honest about this: R[i][j] is the accuracy on task j of a model trained
only on the memory as it stood after task i — not of a model that learned the stream. The paper's
test-time masking to the classes seen so far is not applied (the model is trained only on seen
classes, so unseen outputs were only ever pushed down), nor are its SGDR schedule and cutmix:
training is the run's own optimiser. ``memory_bytes`` counts the stored examples (and the
sampler's generator state).
"""

from __future__ import annotations

import torch
from torch import nn

from ..checks import check_count
from ..data.streams import Task
from ..registry import STRATEGIES
from .base import Batch, Strategy, TrainFunction
from .memory import Memory, SeededRandom, as_records, check_fields, joined, memory_size, take


def gdumb_add(memory: Memory, records: Memory, size: int, generator: torch.Generator) -> Memory:
    """Offer ``records`` to the memory one at a time, in order, under GDumb's greedy rule (Alg. 1,
    module docstring); returns the new memory (rows in slot order)."""
    check_fields(memory, records)
    stored = memory_size(memory)
    labels = (memory["y"].tolist() if memory else []) + records["y"].tolist()
    rows = list(range(stored))  # slot -> row of cat(memory, records)
    slots: dict[int, list[int]] = {}  # class -> its slots
    for slot, row in enumerate(rows):
        slots.setdefault(labels[row], []).append(slot)
    for row in range(stored, len(labels)):
        c = labels[row]
        mine = slots.setdefault(c, [])
        if len(mine) >= size / len(slots):
            continue
        if len(rows) >= size:
            largest = max(len(s) for s in slots.values())
            c_max = min(k for k, s in slots.items() if len(s) == largest)
            pool = slots[c_max]
            pick = int(torch.randint(len(pool), (1,), generator=generator))
            slot = pool[pick]
            pool[pick] = pool[-1]
            pool.pop()
            rows[slot] = row
        else:
            slot = len(rows)
            rows.append(row)
        mine.append(slot)
    return take(joined(memory, records), torch.tensor(rows, dtype=torch.long))


def reinitialise(model: nn.Module, seed: int) -> None:
    """``reset_parameters()`` on every submodule that has it, under a forked RNG seeded ``seed``
    (the CPU's and the model's CUDA devices'); modules without it keep their weights."""
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.is_cuda})
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()


@STRATEGIES.register("gdumb", "GDumb: a greedy class-balanced memory; the model retrained from scratch "
                              "on it alone before every evaluation (Prabhu et al. 2020)")
class GDumb(SeededRandom, Strategy):
    """A greedy class-balanced memory, and a model trained from scratch on it after each task."""

    def __init__(self, buffer_size: int = 1000, epochs: int | None = None) -> None:
        self.buffer_size = check_count("buffer_size", buffer_size)
        self.epochs = check_count("epochs", epochs, allow_none=True)
        self.memory_: Memory = {}

    def setup(self, stream, config) -> None:
        super().setup(stream, config)
        self.seed_rng(self.seed_ + 6007)

    def train_data(self, task: Task) -> Batch:
        """Nothing: GDumb does not learn from the stream (the loop's epochs take no step)."""
        x, y, t = Strategy.train_data(self, task)
        return x[:0], y[:0], t[:0]

    def after_task(self, model: nn.Module, task: Task, train: TrainFunction | None = None) -> None:
        """Offer the task's examples to the memory, then retrain the model from scratch on it."""
        records = as_records(Strategy.train_data(self, task))
        self.memory_ = gdumb_add(self.memory_, records, self.buffer_size, self.rng())
        if train is None:
            return
        seed = self.seed_ + 104729 * (task.id + 1)
        reinitialise(model, seed)
        train((self.memory_["x"], self.memory_["y"], self.memory_["t"]), self.epochs, seed)
