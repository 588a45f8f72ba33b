"""What one training step of each method costs over naive at batch 10 (the GEM protocol), next to
what its arithmetic needs.

The stream is the GEM paper's rotated MNIST (``gem_protocol.protocol_stream``, 1,000 examples a
task), MLP 784-100-100-10, SGD 0.1, batch 10 (``preset("gem")``). Each method first learns
``--prime`` tasks through the library (so memories, importances and anchors exist, as in the
middle of the stream), then one epoch of the next task (100 steps) is timed through the library's
loop (``train_epoch``) on the same seeded batches for every method, the methods alternating in one
process, ``--repeats`` times; the median epoch, divided by naive's, is the method's step cost.

The arithmetic column is a hand-written PyTorch step doing only the method's tensor work on the
same model, data and batch size, with no framework (also divided by the library's naive step):
naive — forward, backward, SGD step; A-GEM — plus forward/backward of a reference batch of
``ref_batch_size`` (256) stored examples, the flat gradients, their dot product (and the projection
on conflict); replay — plus a forward of a drawn batch of 10 stored examples, the joined mean loss;
SI — plus g·θ before and after the step, two multiply-adds per weight, and the penalty's value and
gradient (two fused passes); EWC, MAS — plus the penalty's value and gradient.

    OMP_NUM_THREADS=1 python benchmarks/step_cost.py
    OMP_NUM_THREADS=1 python benchmarks/step_cost.py --methods naive,agem --repeats 9
    OMP_NUM_THREADS=1 python benchmarks/step_cost.py --clock cpu   # on a shared machine
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from gem_protocol import protocol_stream

import lifelong as ll
from lifelong.train import make_optimizer, run_stream, train_epoch

METHODS = ("naive", "si", "replay", "agem", "ewc", "mas")
OPTIONS = {"agem": {"memory_per_task": 256, "ref_batch_size": 256},
           "replay": {"buffer_size": 256 * 20}, "si": {"lam": 0.01},
           "ewc": {"lam": 0.01}, "mas": {"lam": 0.01}}  # small λ: SGD 0.1 stays finite; cost is the same


def primed(name: str, stream, config):
    """(model, strategy, optimiser) after the stream's first tasks but the last, through the library."""
    torch.manual_seed(config.seed)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(100, 100))
    strategy = ll.make_strategy(name, **OPTIONS.get(name, {}))
    learned = ll.Stream(stream.name, stream.tasks[:-1], stream.scenario, stream.input_shape,
                        stream.num_classes)
    model, _ = run_stream(learned, model, strategy, config)
    strategy.before_task(model, stream.tasks[-1])
    return model, strategy, make_optimizer(model, config)


def arithmetic_step(name: str, model, x, y, reference, state):
    """One hand-written step of the method's tensor work only (see the module's doc)."""
    params = [p for p in model.parameters()]
    outputs = model(x)
    if name == "replay":
        rx, ry = reference
        loss = torch.cat([F.cross_entropy(outputs, y, reduction="none"),
                          F.cross_entropy(model(rx), ry, reduction="none")]).mean()
    else:
        loss = F.cross_entropy(outputs, y)
    for p in params:
        p.grad = None
    loss.backward()
    if name == "agem":
        rx, ry = reference
        ref = torch.autograd.grad(F.cross_entropy(model(rx), ry), params)
        g_ref = torch.cat([r.reshape(-1) for r in ref])
        g = torch.cat([p.grad.reshape(-1) for p in params])
        dot = g @ g_ref
        if dot < 0:
            g = g - dot / (g_ref @ g_ref) * g_ref
            torch.cat([p.grad.reshape(-1) for p in params])  # the write back's copy
    if name in ("si", "ewc", "mas"):
        r, s, u, path = state
        if name == "si":
            for p, q in zip(params, path):
                q.addcmul_(p.grad, p.detach())
        total = 0.0
        for p, ri, si, ui in zip(params, r, s, u):
            torch.addcmul(si, ri, p.detach(), out=ui)
            total = total + ui.pow(2).sum()
            p.grad = p.grad.addcmul(ri, ui, value=2.0)
    with torch.no_grad():
        for p in params:
            p.add_(p.grad, alpha=-0.1)
    if name == "si":
        for p, q in zip(params, state[3]):
            q.addcmul_(p.grad, p.detach(), value=-1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--prime", type=int, default=3, help="tasks learned before the timed one")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                        help="wall time, or this process's CPU time (steadier on a shared machine)")
    args = parser.parse_args()
    methods = args.methods.split(",")
    if "naive" not in methods:
        methods.insert(0, "naive")
    stream = protocol_stream(args.prime + 1, 1000, seed=0)
    config = ll.preset("gem", device="cpu", eval_every_epoch=False)
    runs = {name: primed(name, stream, config) for name in methods}
    task = stream.tasks[-1]
    # the arithmetic references: their own model (the same shape), stored examples, Ω buffers
    torch.manual_seed(1)
    ref_model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(100, 100))
    params = list(ref_model.parameters())
    state = ([torch.rand_like(p) for p in params], [torch.rand_like(p) for p in params],
             [torch.empty_like(p) for p in params], [torch.zeros_like(p) for p in params])
    stored_x = torch.cat([t.x_train for t in stream.tasks[:-1]])
    stored_y = torch.cat([t.y_train for t in stream.tasks[:-1]])

    def library(name):
        model, strategy, optimizer = runs[name]
        train_epoch(model, strategy, optimizer, task, strategy.train_data(task), config.batch_size,
                    torch.Generator().manual_seed(0))

    def arithmetic(name):
        gen = torch.Generator().manual_seed(0)
        x, y = task.x_train, task.y_train
        perm = torch.randperm(x.shape[0], generator=gen)
        size = 256 if name == "agem" else 10
        for start in range(0, x.shape[0], config.batch_size):
            idx = perm[start:start + config.batch_size]
            pick = torch.randint(0, stored_x.shape[0], (size,), generator=gen)
            arithmetic_step(name, ref_model, x[idx], y[idx], (stored_x[pick], stored_y[pick]), state)

    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for name in methods:
            for kind, run in (("library", library), ("arithmetic", arithmetic)):
                start = clock()
                run(name)
                times.setdefault((kind, name), []).append(clock() - start)
    naive = statistics.median(times[("library", "naive")])
    steps = -(-task.x_train.shape[0] // config.batch_size)
    print(f"threads {torch.get_num_threads()}, batch {config.batch_size}, {steps} steps an epoch, "
          f"{args.clock} clock, median of {args.repeats} alternating repeats; "
          f"naive {naive / steps * 1e6:.0f} µs a step")
    print(f"{'method':8} {'library/naive':>13} {'arithmetic/naive':>16} {'library/arithmetic':>18}")
    for name in methods:
        lib = statistics.median(times[("library", name)])
        ari = statistics.median(times[("arithmetic", name)])
        print(f"{name:8} {lib / naive:13.2f} {ari / naive:16.2f} {lib / ari:18.2f}", flush=True)


if __name__ == "__main__":
    main()
