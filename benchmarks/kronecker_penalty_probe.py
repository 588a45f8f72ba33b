"""Is the diagonal the limit? A Kronecker-factored Laplace penalty on the homework stream.

The seven regularisers of issue 3 share one diagonal penalty λ Σ Ω_i (θ_i − θ*_i)². This probe
replaces the diagonal with a Kronecker-factored Fisher per linear layer (K-FAC; Martens & Grosse
2015; as a continual-learning penalty: Ritter, Botev & Barber, NeurIPS 2018, "Online Structured
Laplace Approximations for Overcoming Catastrophic Forgetting", Eq. 7):

    λ Σ_t Σ_layers tr(ΔW_tᵀ G_t ΔW_t A_t),   ΔW_t = [W b] − [W b]*_t

with A_t = E[ã ãᵀ] (the layer's input with a 1 appended for the bias) and G_t = E[g gᵀ] (the
gradient of log p(ŷ ∣ x) with respect to the layer's output, ŷ sampled from the model: the true
Fisher), one pair and one anchor per task (the sum of Kronecker products is kept exact, not
merged). It captures the correlations between a layer's weights that the diagonal drops. It is a
probe for the docs, not a registered method: the gradient 2λ G ΔW A costs two matrix products
per layer, task and step (about 5× the homework's run time by the fifth task).

    python benchmarks/kronecker_penalty_probe.py --lams 100 1000 10000          # validation split
    python benchmarks/kronecker_penalty_probe.py --lams 1000 --test --seeds 0 1 2

Same protocol and validation split as ``regularisation_quality.py --search``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn

import lifelong
from lifelong.data.sources import load_source, stratified_split
from lifelong.data.streams import Task
from lifelong.models import make_model
from lifelong.models.modes import eval_mode
from lifelong.strategies.base import Strategy


def linear_layers(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def augmented(layer: nn.Linear) -> torch.Tensor:
    """[W b]: the layer's weights with the bias as one more input column."""
    return torch.cat([layer.weight, layer.bias[:, None]], 1)


class KroneckerLaplace(Strategy):
    """λ Σ_t Σ_layers tr(ΔWᵀ G_t ΔW A_t), one (A_t, G_t, anchor_t) per task and layer."""

    name = "kronecker-laplace"

    def __init__(self, lam: float = 1000.0, chunk: int = 500) -> None:
        self.lam, self.chunk = float(lam), chunk
        self.factors_: list[dict[str, list[torch.Tensor]]] = []
        self._grads: dict[str, torch.Tensor] = {}

    def penalty(self, model: nn.Module) -> float:
        """The value; the gradient 2λ G ΔW A of every layer waits for ``after_backward``."""
        total, self._grads = 0.0, {}
        if not self.factors_:
            return 0.0
        with torch.no_grad():
            for name, layer in linear_layers(model):
                w = augmented(layer)
                grad = torch.zeros_like(w)
                for task in self.factors_:
                    a, g, anchor = task[name]
                    d = w - anchor
                    gda = g @ d @ a
                    total += float((d * gda).sum())
                    grad += gda
                self._grads[name] = grad.mul_(2 * self.lam)
        return self.lam * total

    def after_backward(self, model: nn.Module) -> None:
        for name, layer in linear_layers(model):
            if name in self._grads:
                grad = self._grads[name]
                layer.weight.grad += grad[:, :-1]
                layer.bias.grad += grad[:, -1]

    def after_task(self, model: nn.Module, task: Task) -> None:
        """A_t and G_t over the task's training examples, labels sampled from the model."""
        layers = linear_layers(model)
        inputs: dict[str, torch.Tensor] = {}
        sums = {name: [0.0, 0.0] for name, _ in layers}
        generator = torch.Generator().manual_seed(7919 * self.seed_ + task.id)

        def keep_input(name):
            def hook(module, args, output):
                inputs[name] = args[0].detach()
                output.register_hook(lambda g: sums[name].__setitem__(1, sums[name][1] + g.T @ g))
            return hook

        handles = [layer.register_forward_hook(keep_input(name)) for name, layer in layers]
        try:
            with eval_mode(model):
                for x in task.x_train.split(self.chunk):
                    logits = model(x)
                    y = torch.multinomial(F.softmax(logits.detach(), 1), 1, generator=generator).squeeze(1)
                    for name, _ in layers:
                        a = torch.cat([inputs[name], torch.ones(len(x), 1)], 1)
                        sums[name][0] = sums[name][0] + a.T @ a
                    log_p = F.log_softmax(logits, 1).gather(1, y[:, None]).sum()
                    model.zero_grad(set_to_none=True)
                    log_p.backward()
        finally:
            for handle in handles:
                handle.remove()
            model.zero_grad(set_to_none=True)
        n = len(task.x_train)
        self.factors_.append({name: [sums[name][0] / n, sums[name][1] / n, augmented(layer).detach().clone()]
                              for name, layer in layers})


def one_run(lam: float, seed: int, epochs: int, validation: bool) -> dict:
    options = {}
    if validation:
        xtr, ytr, _, _ = load_source("mnist5k")
        fit_idx, val_idx = stratified_split(ytr.numpy(), test_per_class=100, seed=0)
        fit_idx, val_idx = torch.from_numpy(fit_idx), torch.from_numpy(val_idx)
        options["arrays"] = (xtr[fit_idx], ytr[fit_idx], xtr[val_idx], ytr[val_idx])
    stream = lifelong.make_benchmark("rotated-mnist", **options)
    torch.manual_seed(seed)
    model = make_model("mlp", stream.input_shape, stream.num_classes, hidden=(1024, 512, 256))
    config = lifelong.preset("homework", epochs=epochs, seed=seed, device="cpu", eval_every_epoch=False)
    start = time.perf_counter()
    _, result = lifelong.fit(stream, model, KroneckerLaplace(lam), config)
    R = result.accuracy_matrix
    return {"lam": lam, "seed": seed, "validation": validation, "acc": result.metrics["acc"],
            "bwt": result.metrics["bwt"], "R": R, "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lams", type=float, nargs="+", default=[1000.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--test", action="store_true", help="the test digits (default: validation split)")
    parser.add_argument("--out", help="write every run (with R) to this JSON file")
    args = parser.parse_args()
    runs = []
    for lam in args.lams:
        for seed in args.seeds:
            run = one_run(lam, seed, args.epochs, not args.test)
            runs.append(run)
            last, diagonal = run["R"][-1], [run["R"][i][i] for i in range(len(run["R"]))]
            print(f"λ={lam:g} seed {seed}: ACC {100 * run['acc']:.2f} BWT {100 * run['bwt']:.2f} | R[T] "
                  + " ".join(f"{100 * v:.1f}" for v in last) + " | diagonal "
                  + " ".join(f"{100 * v:.1f}" for v in diagonal) + f" | {run['seconds']:.0f} s", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(runs, f, indent=1)


if __name__ == "__main__":
    main()
