"""What the framework costs: naive fine-tuning through lifelong vs a hand-written PyTorch loop.

Both train the same model (same initial weights) on the same rotated-MNIST stream with the same
mini-batches (the same seeded permutations), optimiser (fresh per task or one for the stream, as
the protocol says), epochs and evaluations (R0, every task after each task and, where the protocol
has them, the seen tasks after each epoch), in one process, alternating, so the ratio is measured
under the same conditions. It also checks that both produce the identical accuracy matrix.
Three protocols (``--protocol``):

- ``homework``: the course's 5 rotations of the embedded digits, MLP 784-1024-512-256-10, Adam
  1e-4 fresh per task, batch 128, 10 epochs (``--epochs``), evaluation after every epoch;
- ``small``: the same stream, MLP 784-256-256-10, Adam 1e-3 kept for the stream, batch 128,
  5 epochs (``--epochs``), evaluation after each task only;
- ``gem``: the GEM paper's 20 rotations of 1,000 examples (``gem_protocol.protocol_stream``),
  MLP 784-100-100-10, SGD 0.1, batch 10, 1 epoch (``preset("gem")``), evaluation after each task.

    OMP_NUM_THREADS=1 python benchmarks/framework_overhead.py --protocol all --repeats 5
    OMP_NUM_THREADS=1 python benchmarks/framework_overhead.py --protocol gem --clock cpu  # shared machine
    python benchmarks/framework_overhead.py --epochs 2 --repeats 3   # homework, 2 epochs

Goal: ratio (library / plain) ≤ 1.03 on each protocol (median of the alternating repeats).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import lifelong as ll
from lifelong.data.augment import crop_flip, draw
from lifelong.train import run_stream


def plain_loop(stream, model, config: ll.TrainConfig) -> list[list[float]]:
    """The loop a student would write: the config's Adam or SGD (fresh per task, or one for the
    stream), shuffled batches (cropped and flipped when the run augments: ``crop_flip`` of the
    same draws), evaluations (after each epoch too when the config asks)."""
    gen = torch.Generator().manual_seed(config.seed)
    augment = config.augments(stream.augment)

    @torch.no_grad()
    def acc(task):
        model.eval()
        correct = sum(int((model(task.x_test[i:i + 2048]).argmax(1) == task.y_test[i:i + 2048]).sum())
                      for i in range(0, task.x_test.shape[0], 2048))
        model.train()
        return correct / task.x_test.shape[0]

    [acc(t) for t in stream.tasks]  # R0
    matrix, opt = [], None
    for task in stream.tasks:
        if opt is None or config.fresh_optimizer:
            opt = (torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
                   if config.optimizer == "sgd" else torch.optim.Adam(model.parameters(), lr=config.lr))
        x, y = task.x_train, task.y_train
        for _ in range(config.epochs):
            perm = torch.randperm(x.shape[0], generator=gen)
            for start in range(0, x.shape[0], config.batch_size):
                idx = perm[start:start + config.batch_size]
                inputs = crop_flip(x[idx], *draw(len(idx), gen)) if augment else x[idx]
                loss = F.cross_entropy(model(inputs), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if config.eval_every_epoch:
                [acc(t) for t in stream.tasks[: task.id + 1]]  # learning-curve point
        matrix.append([acc(t) for t in stream.tasks])
    return matrix


def alternate(stream, fresh_model, config: ll.TrainConfig, repeats: int,
              clock=time.perf_counter) -> tuple[float, float, bool]:
    """(median seconds of lifelong's naive run, of the plain loop, whether their accuracy matrices
    are identical), the two run alternately ``repeats`` times, each on a fresh model, timed by
    ``clock``."""
    times: dict[str, list[float]] = {"lifelong": [], "plain": []}
    matrices = {}
    for _ in range(repeats):
        for name in ("lifelong", "plain"):
            model = fresh_model()
            start = clock()
            if name == "lifelong":
                _, state = run_stream(stream, model, ll.make_strategy("naive"), config)
                matrices[name] = state.accuracy_matrix
            else:
                matrices[name] = plain_loop(stream, model, config)
            times[name].append(clock() - start)
    return (statistics.median(times["lifelong"]), statistics.median(times["plain"]),
            matrices["lifelong"] == matrices["plain"])


def protocol(name: str, epochs: int | None):
    """(stream, fresh-model function, config) of a protocol (see the module's doc)."""
    if name == "gem":
        from gem_protocol import protocol_stream  # the GEM paper's stream, shared

        stream = protocol_stream(20, 1000, seed=0)
        config = ll.preset("gem", device="cpu", eval_every_epoch=False,
                           **({"epochs": epochs} if epochs else {}))
        hidden: tuple[int, ...] = (100, 100)
    else:
        stream = ll.make_benchmark("rotated-mnist")
        if name == "homework":
            config = ll.preset("homework", epochs=epochs or 10, device="cpu")
            hidden = (1024, 512, 256)
        else:
            config = ll.TrainConfig(optimizer="adam", lr=1e-3, batch_size=128, epochs=epochs or 5,
                                    fresh_optimizer=False, eval_every_epoch=False, device="cpu")
            hidden = (256, 256)

    def fresh_model():
        torch.manual_seed(config.seed)
        return ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=hidden)

    return stream, fresh_model, config


PROTOCOLS = ("homework", "small", "gem")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="homework", choices=(*PROTOCOLS, "all"))
    parser.add_argument("--epochs", type=int, default=0,
                        help="epochs per task (0: the protocol's: homework 10, small 5, gem 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                        help="wall time, or this process's CPU time (steadier on a shared machine; "
                             "with 1 thread the same work)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"threads {torch.get_num_threads()}, {args.clock} clock, median of {args.repeats} "
          "alternating repeats")
    print(f"{'protocol':9} {'examples':>9} {'plain s':>8} {'library s':>9} {'ratio':>6}  identical")
    for name in PROTOCOLS if args.protocol == "all" else (args.protocol,):
        stream, fresh_model, config = protocol(name, args.epochs)
        examples = sum(t.x_train.shape[0] for t in stream.tasks) * config.epochs
        lib, plain, identical = alternate(stream, fresh_model, config, args.repeats, clock)
        print(f"{name:9} {examples:9d} {plain:8.2f} {lib:9.2f} {lib / plain:6.3f}  "
              f"{'yes' if identical else 'NO'}", flush=True)
    print("goal: ratio (library / plain) <= 1.03")


if __name__ == "__main__":
    main()
