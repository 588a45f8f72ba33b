"""The GEM paper's rotated-MNIST protocol (Lopez-Paz & Ranzato 2017, §5) on the embedded digits.

20 tasks; task t rotates every digit by an angle drawn uniformly from [9t, 9t + 9) degrees
(seeded); 1,000 training examples per task drawn from the embedded 4,000 training digits (the
paper draws from full MNIST's 60,000); the 1,000 embedded test digits, rotated, test each task.
MLP 784-100-100-10, SGD, batch 10, one epoch per task (``preset("gem")``), 256 memories per
task. Prints ACC, BWT, FWT, time (and time relative to naive), stored bytes, then GEM's
memory-gradient time computed in one batched pass vs one backward per past task.

Full protocol (what docs/episodic-memory.md reports)::

    OMP_NUM_THREADS=1 python benchmarks/gem_protocol.py

Smaller, faster check::

    python benchmarks/gem_protocol.py --tasks 5 --methods naive,gem --speed-reps 3

On a GPU (the speed-up of the batched memory gradients is per-call overhead, which a CPU hides
behind arithmetic; the clock synchronises with the device)::

    python benchmarks/gem_protocol.py --device cuda --methods naive,gem
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

import lifelong as ll
from lifelong.registry import STRATEGIES
from lifelong.strategies import load_all
from lifelong.strategies.memory import append_task_memory, as_records

METHODS = ("naive", "ewc", "gem", "agem", "replay", "lwf")


def protocol_stream(tasks: int, train_per_task: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    angles = [9.0 * t + 9.0 * float(torch.rand((), generator=gen)) for t in range(tasks)]
    return ll.make_benchmark("rotated-mnist", angles=angles, train_per_task=train_per_task,
                             seed=seed)


def strategy_options(name: str, args: argparse.Namespace) -> dict:
    memories = args.memories
    return {
        "gem": {"memory_per_task": memories, "margin": args.margin, "eps": args.gem_eps},
        "agem": {"memory_per_task": memories, "ref_batch_size": memories},
        # the same total budget as GEM holds at the end of the stream
        "replay": {"buffer_size": memories * args.tasks, "policy": args.replay_policy},
        "lwf": {"lam": args.lwf_lam, "temperature": 2.0},
        "ewc": {"lam": args.ewc_lam},
    }.get(name, {})


def run_method(name: str, stream, args: argparse.Namespace):
    torch.manual_seed(args.seed)
    model = ll.make_model("mlp", stream.input_shape, stream.num_classes, hidden=(100, 100))
    strategy = ll.make_strategy(name, **strategy_options(name, args))
    config = ll.preset("gem", lr=args.lr, seed=args.seed, device=args.device, eval_every_epoch=False)
    start = time.perf_counter()
    model, result = ll.fit(stream, model, strategy, config)
    return model, strategy, result, time.perf_counter() - start


def gradient_speedup(model, stream, memories: int, reps: int, seed: int,
                     device: str = "cpu") -> dict[str, float]:
    """Seconds per step of GEM's memory gradients for all but the last task: batched, one
    backward per task, and — the floor for any exact method — one backward of the summed loss
    over all memories (a single gradient, not one per task). On CUDA the clock waits for the
    device (``torch.cuda.synchronize``) before it starts and stops."""
    model = model.to(device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    times = {}
    for mode in ("batched", "per_task", "one_sum"):
        gem = ll.make_strategy("gem", memory_per_task=memories,
                               memory_grads="per_task" if mode == "per_task" else "batched")
        gem.setup(stream, ll.preset("gem", seed=seed, device=device))
        gen = torch.Generator().manual_seed(seed)
        for task in stream.tasks[:-1]:
            gem.memory_ = append_task_memory(gem.memory_, as_records(gem.train_data(task)), memories, gen)
        gem.memory_ = {k: v.to(device) for k, v in gem.memory_.items()}
        x = gem.memory_["x"].reshape(-1, *gem.memory_["x"].shape[2:])
        y = gem.memory_["y"].reshape(-1)
        params = [p for p in model.parameters() if p.requires_grad]

        def step(gem=gem, mode=mode, x=x, y=y, params=params):
            if mode == "one_sum":
                torch.autograd.grad(F.cross_entropy(model(x), y), params)
            else:
                gem.memory_gradients(model)

        step()  # warm-up
        sync()
        start = time.perf_counter()
        for _ in range(reps):
            step()
        sync()
        times[mode] = (time.perf_counter() - start) / reps
    return times


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--train-per-task", type=int, default=1000)
    parser.add_argument("--memories", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--margin", type=float, default=0.5)
    parser.add_argument("--gem-eps", type=float, default=1e-3)
    parser.add_argument("--ewc-lam", type=float, default=1.0,
                        help="1 was best of 0.1/1/3/10 here; 3 and more diverge at SGD lr 0.1")
    parser.add_argument("--lwf-lam", type=float, default=1.0)
    parser.add_argument("--replay-policy", default="reservoir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--speed-reps", type=int, default=10)
    parser.add_argument("--speed-memories", default="256,64,16",
                        help="memory sizes at which to time batched vs per-task gradients")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_all()

    stream = protocol_stream(args.tasks, args.train_per_task, args.seed)
    print(f"rotated MNIST, {args.tasks} tasks, angles "
          f"{', '.join(f'{a:.1f}' for a in stream.meta['angles'])}; {args.train_per_task} "
          f"train examples/task from the embedded 4,000; MLP 100-100, SGD lr {args.lr}, "
          f"batch 10, 1 epoch, {args.memories} memories/task, {args.threads} thread(s)")
    warm = ll.make_benchmark("rotated-mnist", angles=[0.0], train_per_task=50, seed=args.seed)
    run_method("naive", warm, args)  # first-call costs out of the timed runs
    rows, model = [], None
    for name in args.methods.split(","):
        if name not in STRATEGIES:
            print(f"{name:7s} not registered in this checkout; skipped")
            continue
        try:
            trained, strategy, result, seconds = run_method(name, stream, args)
        except RuntimeError as exc:  # e.g. a penalty too strong for SGD at this lr diverges
            print(f"{name:7s} failed: {str(exc).splitlines()[0]}", flush=True)
            continue
        model = trained if name == "naive" or model is None else model
        m = result.metrics
        rows.append({"method": name, "acc": m["acc"], "bwt": m["bwt"], "fwt": m["fwt"],
                     "seconds": seconds, "memory_bytes": result.memory_bytes[-1],
                     "options": strategy.hyperparameters()})
        print(f"{name:7s} ACC {m['acc']:.4f}  BWT {m['bwt']:+.4f}  FWT {m['fwt']:+.4f}  "
              f"time {seconds:7.1f}s  stored {result.memory_bytes[-1] / 2**20:7.2f} MiB",
              flush=True)
    base = next((r["seconds"] for r in rows if r["method"] == "naive"), None)
    if base:
        print("time relative to naive: " + ", ".join(
            f"{r['method']} {r['seconds'] / base:.1f}x" for r in rows))
    speed = []
    if model is not None and args.speed_reps > 0:
        for memories in (int(m) for m in args.speed_memories.split(",")):
            t = gradient_speedup(model, stream, memories, args.speed_reps, args.seed, args.device)
            speed.append({"memories": memories, "batched_s": t["batched"],
                          "per_task_s": t["per_task"], "one_summed_gradient_s": t["one_sum"]})
            print(f"GEM memory gradients, {args.tasks - 1} past tasks x {memories} memories: "
                  f"batched {1000 * t['batched']:.1f} ms/step, one backward per task "
                  f"{1000 * t['per_task']:.1f} ms/step, speed-up "
                  f"{t['per_task'] / t['batched']:.2f}x (one summed gradient over all "
                  f"memories: {1000 * t['one_sum']:.1f} ms)", flush=True)
    out = {"args": vars(args), "angles": stream.meta["angles"], "results": rows, "speed": speed}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
