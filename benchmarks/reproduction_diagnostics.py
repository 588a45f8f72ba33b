"""What-if runs behind docs/reproductions.md's "why the gaps": each runs one method with one detail
of another implementation changed, on the doc's protocol, and prints ACC per seed next to the
library's own method on the same seed (the same initial weights and batches).

These are diagnostics on the test data, not tunings: they explain a gap, they choose nothing.

    python benchmarks/reproduction_diagnostics.py icarl-soft-targets --seeds 0 1 2 3 4
    python benchmarks/reproduction_diagnostics.py lwf-van-de-ven --seeds 0 1 2 3 4
    python benchmarks/reproduction_diagnostics.py seen-classes --seeds 0
    python benchmarks/reproduction_diagnostics.py rotation-nearest --seeds 0 1 2

* ``icarl-soft-targets``: iCaRL's distillation targets σ(g_old / 2), as van de Ven & Tolias's code
  (``KD_temp`` 2) has them, instead of the paper's σ(g_old) (Alg. 3); split MNIST class-IL,
  2,000 exemplars, Adam 1e-3, 286 epochs.
* ``lwf-van-de-ven``: van de Ven & Tolias's class-incremental LwF — the distillation's
  log-softmax over every class seen (old and current), the old model's softmax(g_old / T) on the
  old classes padded with zeros on the current ones, × T², weighted (1 − 1/t) against (1/t) for
  the cross-entropy — instead of Li & Hoiem's distillation over the old classes alone.
* ``seen-classes``: naive and LwF with the outputs of classes not seen yet masked while training
  (van de Ven & Tolias's ``active_classes``).
* ``rotation-nearest``: GEM's rotated-MNIST protocol (rotated by nearest-neighbour sampling, as
  PIL's default, instead of bilinear): naive and EWC (λ 1), the angles of docs/reproductions.md.
"""

from __future__ import annotations

import argparse
import functools

import torch
import torch.nn.functional as F

import lifelong as ll
import lifelong.data.benchmarks.rotated_mnist as rotated_mnist
import lifelong.strategies.icarl as icarl
from lifelong.data.transforms import rotate
from lifelong.models.modes import outputs_of
from lifelong.strategies.lwf import LwF
from lifelong.strategies.naive import Naive

GEM_ANGLES = [4.4663, 15.9140, 18.7963, 28.1883, 38.7668, 50.7067, 58.4108, 71.0680, 76.1007, 86.6908,
              93.1400, 102.6155, 108.2009, 118.5197, 128.6450, 139.6667, 150.2790, 160.2001, 163.4493,
              173.5404]


class SeenClasses:
    """Mixin: ``seen_``, the classes the tasks so far (the current one included) have shown."""

    def setup(self, stream, config) -> None:
        super().setup(stream, config)
        self.seen_ = torch.zeros(stream.num_classes, dtype=torch.bool)

    def before_task(self, model, task):
        self.seen_ = self.seen_.clone()
        self.seen_[list(task.classes)] = True
        return super().before_task(model, task)


class SeenClassesOnly(SeenClasses):
    """Mixin: while training, the outputs of classes no task so far has shown are masked."""

    def predict(self, model, x, task_ids):
        out = super().predict(model, x, task_ids)
        return out.masked_fill(~self.seen_.to(out.device), -1e9) if model.training else out


class SeenNaive(SeenClassesOnly, Naive):
    pass


class SeenLwF(SeenClassesOnly, LwF):
    pass


class VanDeVenLwF(SeenClasses, LwF):
    """Class-incremental LwF as van de Ven & Tolias's code computes it (module docstring); the loop
    adds the cross-entropy, so the distillation is weighted (t − 1): (1/t)·CE + (1 − 1/t)·KD × t."""

    def extra_loss(self, model, batch, outputs, task):
        if not self.old_model_ or self.old_heads_ is None:
            return 0.0
        T = self.temperature
        old_classes, seen = self.old_heads_.any(0).to(outputs.device), self.seen_.to(outputs.device)
        old = outputs_of(model, self.old_model_, batch[0])
        target = torch.zeros_like(outputs)
        target[:, old_classes] = F.softmax(old[:, old_classes] / T, dim=1)
        log_p = F.log_softmax(outputs[:, seen] / T, dim=1)
        return task.id * -(target[:, seen] * log_p).sum(1).mean() * T * T  # t − 1 = task.id


def fit(stream, strategy, config, hidden, seed: int) -> float:
    torch.manual_seed(seed)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=hidden)
    return 100 * ll.fit(stream, model, strategy, config)[1].metrics["acc"]


def van_de_ven(name: str, make, seeds, lr: float = 1e-3) -> None:
    stream = ll.make_benchmark("split-mnist", scenario="class")
    for seed in seeds:
        config = ll.preset("homework", lr=lr, epochs=286, batch_size=128, seed=seed, eval_every_epoch=False)
        print(f"{name} seed {seed}: ACC {fit(stream, make(), config, (400, 400), seed):.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=["icarl-soft-targets", "lwf-van-de-ven", "seen-classes",
                                          "rotation-nearest"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--baseline", action="store_true", help="also run the library's own method")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.which == "icarl-soft-targets":
        if args.baseline:
            van_de_ven("icarl", lambda: ll.make_strategy("icarl", buffer_size=2000), args.seeds)
        paper = icarl.icarl_loss
        icarl.icarl_loss = lambda logits, y, old_logits, new, old: paper(  # targets σ(g_old / 2)
            logits, y, None if old_logits is None else old_logits / 2, new, old)
        van_de_ven("icarl, targets sigma(g_old/2)", lambda: ll.make_strategy("icarl", buffer_size=2000),
                   args.seeds)
    elif args.which == "lwf-van-de-ven":
        if args.baseline:
            van_de_ven("lwf (lam 0.3)", lambda: LwF(lam=0.3, temperature=2.0), args.seeds)
        van_de_ven("lwf as van de Ven & Tolias", lambda: VanDeVenLwF(temperature=2.0), args.seeds)
    elif args.which == "seen-classes":
        for name, make in (("naive", Naive), ("naive, seen classes only", SeenNaive),
                           ("lwf", lambda: LwF(lam=0.3, temperature=2.0)),
                           ("lwf, seen classes only", lambda: SeenLwF(lam=0.3, temperature=2.0))):
            van_de_ven(name, make, args.seeds)
    else:
        for rotation in ("bilinear", "nearest"):
            if rotation == "nearest":
                rotated_mnist.rotate = functools.partial(rotate, mode="nearest")
            for method, options in (("naive", {}), ("ewc", {"lam": 1.0})):
                for seed in args.seeds:
                    stream = ll.make_benchmark("rotated-mnist", angles=GEM_ANGLES, train_per_task=1000,
                                               seed=seed)
                    config = ll.preset("gem", seed=seed, eval_every_epoch=False)
                    acc = fit(stream, ll.make_strategy(method, **options), config, (100, 100), seed)
                    print(f"{rotation} {method} seed {seed}: ACC {acc:.2f}", flush=True)


if __name__ == "__main__":
    main()
