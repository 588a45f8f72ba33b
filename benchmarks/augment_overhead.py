"""What augmentation in the loop costs the framework: lifelong with random crop and flip vs a plain
PyTorch loop doing the same work.

Both train the same conv model (same initial weights) on the same CIFAR-shaped random stream
(2 tasks × 1,000 images 3×32×32, 5 classes each, class-incremental), with the same mini-batches
(the same seeded permutations), the same crops and flips (the same draws from the same generator,
applied by ``lifelong.data.augment.crop_flip`` in both: the work, not the framework) and the same
evaluations (R0, every task after each task, the seen tasks after each epoch), in one process,
alternating, median of the repeats; both must give the identical accuracy matrix
(``framework_overhead.plain_loop`` and ``alternate``). SGD, batch 32
(DER's), lr 0.03. Then one epoch of the library's loop, augmentation on, over 10,000 such images:
the seconds per epoch of the model.

    OMP_NUM_THREADS=1 python benchmarks/augment_overhead.py     # resnet18-reduced if registered, else cnn
    OMP_NUM_THREADS=1 python benchmarks/augment_overhead.py --model cnn --repeats 5

Goal: ratio (library / plain) ≤ 1.05.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
from framework_overhead import alternate  # the plain loop and the alternating timing, shared

import lifelong as ll
from lifelong.registry import MODELS
from lifelong.train import run_stream

SHAPE, CLASSES = (3, 32, 32), 10


def cifar_shaped(tasks: int, per_task: int, test: int = 200, seed: int = 0) -> ll.Stream:
    """Random images in [0, 1] with labels split into ``tasks`` tasks of equal class counts; the
    stream augments by default, as the CIFAR streams do."""
    g = torch.Generator().manual_seed(seed)
    width = CLASSES // tasks
    made = []
    for t in range(tasks):
        classes = tuple(range(t * width, (t + 1) * width))

        def labels(n, classes=classes):
            return torch.tensor(classes)[torch.randint(0, len(classes), (n,), generator=g)]

        made.append(ll.Task(t, f"t{t}", torch.rand(per_task, *SHAPE, generator=g), labels(per_task),
                            torch.rand(test, *SHAPE, generator=g), labels(test), classes))
    return ll.Stream("cifar-shaped", made, "class", SHAPE, CLASSES, augment=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "resnet18-reduced" if "resnet18-reduced" in MODELS else "cnn"
    parser.add_argument("--model", default=default, help=f"a registered image model (default: {default})")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-task", type=int, default=1000, help="training images per task")
    parser.add_argument("--epoch-examples", type=int, default=10_000,
                        help="images of the timed epoch (0: skip it)")
    args = parser.parse_args()
    config = ll.TrainConfig(optimizer="sgd", lr=0.03, momentum=0.0, batch_size=32, epochs=1, device="cpu")
    stream = cifar_shaped(2, args.per_task)

    def fresh_model():
        torch.manual_seed(config.seed)
        return ll.make_model(args.model, SHAPE, CLASSES)

    lib, plain, identical = alternate(stream, fresh_model, config, args.repeats)
    examples = args.per_task * len(stream) * config.epochs
    print(f"model {args.model}, threads {torch.get_num_threads()}, batch {config.batch_size}, {examples} "
          f"augmented training images per run, median of {args.repeats} alternating repeats")
    print(f"plain PyTorch loop : {plain:7.2f} s  ({examples / plain:6.0f} images/s)")
    print(f"lifelong run_stream: {lib:7.2f} s  ({examples / lib:6.0f} images/s)")
    print(f"ratio lifelong/plain: {lib / plain:.3f}  (goal <= 1.05)")
    print(f"identical accuracy matrices: {identical}")
    if args.epoch_examples:
        one = cifar_shaped(1, args.epoch_examples, test=1)
        timed = dataclasses.replace(config, eval_every_epoch=False)
        start = time.perf_counter()
        run_stream(one, fresh_model(), ll.make_strategy("naive"), timed)
        print(f"one epoch over {args.epoch_examples} images (augmented, batch {config.batch_size}): "
              f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
