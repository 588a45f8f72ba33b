"""Kronecker-factored Laplace penalty: EWC without the diagonal (``kfac``).

Ritter, Botev & Barber, "Online Structured Laplace Approximations for Overcoming Catastrophic
Forgetting", NeurIPS 2018 (§3, Eq. 7): the quadratic penalty of EWC with each linear layer's block
of the Fisher approximated by a Kronecker product (K-FAC; Martens & Grosse, ICML 2015, §3):

    F_layer ≈ A ⊗ G,   A = E[ã ãᵀ],   G = E[g gᵀ]

with ã the layer's input with a 1 appended (the bias is one more input column of W̃ = [W b]) and
g = ∂ log p(ŷ ∣ x)/∂s the gradient of the log-likelihood with respect to the layer's output s.
Then (vec ΔW̃)ᵀ (A ⊗ G) vec ΔW̃ = tr(ΔW̃ᵀ G ΔW̃ A), and the penalty after tasks 1..t is

    λ Σ_tasks Σ_layers tr(ΔW̃_kᵀ G_k ΔW̃_k A_k),   ΔW̃_k = W̃ − W̃*_k

one term per task with its own anchor W̃*_k (as EWC's paper; the sum of Kronecker products is kept
exact, not merged into one product), gradient 2λ Σ_k G_k ΔW̃_k A_k. Where EWC keeps only the
diagonal of the per-example Fisher, this keeps the correlations between a layer's weights; it
costs two matrix products per layer, task and training step, so it grows with the tasks learned.

Hyper-parameters:
  lam      λ ≥ 0 (default from the search on rotated MNIST's validation split, docs/regularisation.md)
  fisher   "true" (default): ŷ sampled from the model (the Fisher); "empirical": the data's labels
  samples  examples of the task for A and G (None: all), a seeded subset

Every trainable parameter must belong to an ``nn.Linear`` layer (MLPs); other layers (a CNN's
convolutions) need their own factors and are refused — use ``ewc`` there. Factors use the
task-masked logits, so multi-head streams work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice, check_count, check_number
from ..data.streams import Task
from ..errors import LifelongError
from ..models.modes import eval_mode
from ..registry import STRATEGIES
from .base import Penalty, Strategy, TrainFunction
from .gradient_stats import outside_linear
from .importance import estimation_sample, trainable

FISHER_KINDS = ("true", "empirical")
CHUNK = 500
Factors = dict[str, torch.Tensor]
"""Linear layer's module name → a tensor (A, G or an anchor W̃*)."""


def linear_layers(model: nn.Module) -> dict[str, nn.Linear]:
    """The model's Linear layers that have trainable weights, by module name; refuses a model with
    trainable parameters anywhere else."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.weight.requires_grad}
    name = outside_linear(layers, trainable(model))
    if name is not None:
        raise LifelongError(f"kfac factors the Fisher of nn.Linear layers only, but the trainable "
                            f"parameter {name!r} belongs to another layer; use ewc for this model")
    return layers


def augmented(layer: nn.Linear) -> torch.Tensor:
    """W̃ = [W b] (out × in+1); a layer without bias gets a zero column."""
    bias = layer.bias if layer.bias is not None else torch.zeros_like(layer.weight[:, 0])
    return torch.cat([layer.weight, bias[:, None]], 1)


@STRATEGIES.register("kfac", "EWC with a Kronecker-factored Fisher per linear layer (Ritter 2018)")
class KroneckerLaplace(Strategy):
    """λ Σ_tasks Σ_layers tr(ΔW̃ᵀ G ΔW̃ A): one (A, G, anchor) per task and linear layer."""


    def __init__(self, lam: float = 10.0, fisher: str = "true", samples: int | None = None) -> None:
        self.lam = check_number("lam", lam)
        self.fisher = check_choice("fisher", fisher, FISHER_KINDS)
        self.samples = check_count("samples", samples, allow_none=True)
        self.input_factors_: list[dict[str, torch.Tensor]] = []   # A_k per task and layer
        self.output_factors_: list[dict[str, torch.Tensor]] = []  # G_k
        self.anchors_: list[dict[str, torch.Tensor]] = []         # W̃*_k

    def before_task(self, model: nn.Module, task: Task) -> nn.Module:
        linear_layers(model)  # refuse a model it cannot factor before training it
        return model

    # ------------------------------------------------------------ penalty
    def penalty(self, model: nn.Module) -> Penalty | float:
        """The value λ Σ tr(ΔW̃ᵀ G ΔW̃ A) and its gradient 2λ Σ G ΔW̃ A, which the loop adds after
        backward (``Penalty``)."""
        if not self.anchors_:
            return 0.0
        total, grads = None, {}
        layers = linear_layers(model)
        with torch.no_grad():
            for name, layer in layers.items():
                w = augmented(layer)
                grad = torch.zeros_like(w)
                for a, g, anchor in zip(self.input_factors_, self.output_factors_, self.anchors_):
                    if name not in anchor:
                        continue  # a layer grown after that task
                    d = w - anchor[name]
                    gda = g[name] @ d @ a[name]
                    term = (d * gda).sum()
                    total = term if total is None else total + term
                    grad += gda
                grads[name] = grad.mul_(2 * self.lam)
        if total is None:
            return 0.0

        def write() -> None:
            for name, grad in grads.items():
                layer = layers[name]
                for param, part in ((layer.weight, grad[:, :-1]), (layer.bias, grad[:, -1])):
                    if param is None or not param.requires_grad:
                        continue
                    param.grad = part.contiguous() if param.grad is None else param.grad + part

        return Penalty(self.lam * total, write)

    # ------------------------------------------------------------ factors
    def after_task(self, model: nn.Module, task: Task, train: TrainFunction | None = None) -> None:
        a, g = self.factors(model, task)
        self.input_factors_ = [*self.input_factors_, a]
        self.output_factors_ = [*self.output_factors_, g]
        anchor = {n: augmented(m).detach().clone() for n, m in linear_layers(model).items() if n in a}
        self.anchors_ = [*self.anchors_, anchor]

    def factors(self, model: nn.Module, task: Task) -> tuple[Factors, Factors]:
        """(A, G) of every linear layer: means over the task's examples of ã ãᵀ and g gᵀ, with g
        each example's own output gradient (the examples' log-likelihoods are summed)."""
        layers = linear_layers(model)
        x, y, t = estimation_sample(self, task, self.samples)
        sums_a = {n: 0.0 for n in layers}
        sums_g = {n: 0.0 for n in layers}
        seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        gen = torch.Generator().manual_seed(self.seed_ * 104729 + task.id)

        def record(name: str):
            def hook(module, inputs, output):
                if name in seen or inputs[0].dim() != 2:
                    raise LifelongError(f"kfac needs each linear layer applied once to (batch, features) "
                                        f"inputs, but {name!r} is not; use ewc for this model")
                seen[name] = (inputs[0].detach(), output)
            return hook

        handles = [m.register_forward_hook(record(n)) for n, m in layers.items()]
        try:
            with eval_mode(model):
                for start in range(0, x.shape[0], CHUNK):
                    xb, tb = x[start:start + CHUNK], t[start:start + CHUNK]
                    seen.clear()
                    log_p = F.log_softmax(self.logits(model, xb, tb), 1)
                    if self.fisher == "true":
                        probs = log_p.detach().exp().cpu()
                        yb = torch.multinomial(probs, 1, generator=gen).squeeze(1).to(xb.device)
                    else:
                        yb = y[start:start + CHUNK]
                    used = [n for n in layers if n in seen]
                    outs = torch.autograd.grad(log_p.gather(1, yb[:, None]).sum(), [seen[n][1] for n in used],
                                               allow_unused=True)
                    for name, out_grad in zip(used, outs):
                        inputs = seen[name][0]
                        ones = torch.ones(inputs.shape[0], 1, dtype=inputs.dtype, device=inputs.device)
                        inputs = torch.cat([inputs, ones], 1)
                        out_grad = torch.zeros_like(seen[name][1]) if out_grad is None else out_grad
                        sums_a[name] = sums_a[name] + inputs.T @ inputs
                        sums_g[name] = sums_g[name] + out_grad.T @ out_grad
        finally:
            for handle in handles:
                handle.remove()
        n = x.shape[0]
        return ({k: v / n for k, v in sums_a.items() if torch.is_tensor(v)},
                {k: v / n for k, v in sums_g.items() if torch.is_tensor(v)})
