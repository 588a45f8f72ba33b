"""What the framework costs: naive fine-tuning through lifelong vs a hand-written PyTorch loop.

Both train the same model (same initial weights) on the same rotated-MNIST stream with the same
mini-batches (the same seeded permutations), epochs and evaluations (R0, every task after each
task, the seen tasks after each epoch), in one process, alternating, so the ratio is measured
under the same conditions. It also checks that both produce the identical accuracy matrix.

    python benchmarks/framework_overhead.py               # homework protocol: 5 tasks × 10 epochs
    python benchmarks/framework_overhead.py --epochs 2 --repeats 3

Goal: ratio (library / plain) ≤ 1.05.
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
    """The loop a student would write: a fresh optimiser per task (the config's Adam, or SGD),
    shuffled batches (cropped and flipped when the run augments: ``crop_flip`` of the same draws),
    evaluations."""
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
    matrix = []
    for task in stream.tasks:
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
            [acc(t) for t in stream.tasks[: task.id + 1]]  # learning-curve point
        matrix.append([acc(t) for t in stream.tasks])
    return matrix


def alternate(stream, fresh_model, config: ll.TrainConfig, repeats: int) -> tuple[float, float, bool]:
    """(median seconds of lifelong's naive run, of the plain loop, whether their accuracy matrices
    are identical), the two run alternately ``repeats`` times, each on a fresh model."""
    times: dict[str, list[float]] = {"lifelong": [], "plain": []}
    matrices = {}
    for _ in range(repeats):
        for name in ("lifelong", "plain"):
            model = fresh_model()
            start = time.perf_counter()
            if name == "lifelong":
                _, state = run_stream(stream, model, ll.make_strategy("naive"), config)
                matrices[name] = state.accuracy_matrix
            else:
                matrices[name] = plain_loop(stream, model, config)
            times[name].append(time.perf_counter() - start)
    return (statistics.median(times["lifelong"]), statistics.median(times["plain"]),
            matrices["lifelong"] == matrices["plain"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = ll.preset("homework", epochs=args.epochs, device="cpu")
    stream = ll.make_benchmark("rotated-mnist")
    examples = sum(t.x_train.shape[0] for t in stream.tasks) * config.epochs

    def fresh_model():
        torch.manual_seed(config.seed)
        return ll.make_model("mlp", stream.input_shape, stream.num_classes)

    lib, plain, identical = alternate(stream, fresh_model, config, args.repeats)
    print(f"threads {torch.get_num_threads()}, {examples} training examples per run, "
          f"median of {args.repeats} alternating repeats")
    print(f"plain PyTorch loop : {plain:7.2f} s  ({examples / plain:8.0f} examples/s)")
    print(f"lifelong run_stream: {lib:7.2f} s  ({examples / lib:8.0f} examples/s)")
    print(f"ratio lifelong/plain: {lib / plain:.3f}  (goal <= 1.05)")
    print(f"identical accuracy matrices: {identical}")


if __name__ == "__main__":
    main()
