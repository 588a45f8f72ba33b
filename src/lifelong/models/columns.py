"""Feed-forward chains of Linear/Conv2d blocks, and the columns of Progressive Neural Networks.

Resource-allocation methods need to see a model as a chain of *blocks*: a weighted layer
(``nn.Linear`` or ``nn.Conv2d``) followed by the parameter-free operations up to the next one
(activation, pooling, flatten, dropout). ``parse_chain`` reads that chain from any model whose
leaf modules, in the order they are defined, are the order they run in — the library's ``mlp``
and ``cnn`` and most ``nn.Sequential`` models — and ``check_chain`` verifies it on real inputs.
Normalisation layers and skip connections (``resnet18-reduced``, ``resnet18``) are refused in one
line: a column or a task's share of the weights would also need its own BatchNorm parameters and
running statistics (PackNet's paper keeps them per task), which these methods do not implement.

``ProgressiveNet`` is Rusu et al. 2016, "Progressive Neural Networks" (arXiv:1606.04671): one
column per task, each a fresh copy of the base network; column k's layer i also receives the
hidden layer i−1 of every earlier column through the paper's non-linear lateral *adapter*
(Sec. 2, "Adapters", eq. 2):

    h_i^(k) = σ( W_i^(k) h_{i−1}^(k) + U_i^(k:j) σ( V_i^(k:j) α_{i−1}^(<k) h_{i−1}^(<k) ) )

where h^(<k) is the concatenation of the earlier columns' activations, α a learned scalar
(initialised to a small random value), V a projection (a linear map, or a 1×1 convolution for
convolutional layers) onto as many units/channels as one column's layer i−1 has (times
``adapter_ratio``), and U a map of the same kind and geometry as W_i. Layer 1 has no laterals.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import LifelongError
from .modes import eval_mode

WEIGHTED = (nn.Linear, nn.Conv2d)
PARAMETER_FREE = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.MaxPool2d,
                  nn.AvgPool2d, nn.Flatten, nn.Dropout, nn.Identity)


@dataclass
class Chain:
    """A model read as ``pre`` ops, then blocks ``(name, layer, post ops)`` in running order."""

    pre: list[nn.Module]
    names: list[str]
    layers: list[nn.Module]
    posts: list[list[nn.Module]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.pre:
            x = op(x)
        for layer, post in zip(self.layers, self.posts):
            x = layer(x)
            for op in post:
                x = op(x)
        return x


def parse_chain(model: nn.Module, method: str) -> Chain:
    """Read ``model`` as a chain of Linear/Conv2d blocks; a clear error names what does not fit."""
    chain = Chain([], [], [], [])
    for name, module in model.named_modules():
        if list(module.children()):
            continue
        if isinstance(module, WEIGHTED):
            chain.names.append(name)
            chain.layers.append(module)
            chain.posts.append([])
        elif isinstance(module, PARAMETER_FREE):
            (chain.posts[-1] if chain.layers else chain.pre).append(module)
        else:
            raise LifelongError(
                f"{method} builds on chains of Linear/Conv2d layers with parameter-free ops "
                f"between them; layer {name!r} is a {type(module).__name__}. Use the mlp or cnn "
                "model, or an nn.Sequential of such layers (not resnet18-reduced or resnet18: "
                "their BatchNorm and skip connections are not supported)"
            )
    if len(chain.layers) < 2:
        raise LifelongError(f"{method} needs a model with at least two Linear/Conv2d layers")
    return chain


@torch.no_grad()
def check_chain(model: nn.Module, chain: Chain, x: torch.Tensor, method: str) -> None:
    """Raise unless running the chain gives the model's own output on ``x``."""
    with eval_mode(model):
        try:
            same = torch.allclose(chain.forward(x), model(x), atol=1e-5)
        except RuntimeError:  # the layers' shapes do not even fit in the order they are defined
            same = False
    if not same:
        raise LifelongError(
            f"{method} needs a feed-forward model whose layers run in the order they are defined, "
            f"as modules, and {type(model).__name__}.forward computes something else: activations "
            "called as functions in forward (torch.relu, F.relu, x.flatten), skip connections or "
            "reordered layers cannot be parsed; write the chain as layers in running order "
            "(nn.Linear/nn.Conv2d, nn.ReLU, nn.Flatten modules: an nn.Sequential, the mlp or the cnn model)"
        )


def refuse_frozen(model: nn.Module, method: str) -> None:
    """Refuse a model with frozen parameters: resource-allocation methods decide themselves which
    weights train (they would train, prune or redraw a weight the user froze)."""
    frozen = [name for name, param in model.named_parameters() if not param.requires_grad]
    if frozen:
        shown = ", ".join(repr(n) for n in frozen[:3])
        if len(frozen) > 3:
            shown += f" and {len(frozen) - 3} more"
        raise LifelongError(
            f"{method} decides itself which weights train and cannot keep frozen parameters fixed; "
            f"{shown} {'has' if len(frozen) == 1 else 'have'} requires_grad=False: unfreeze them "
            "(model.requires_grad_(True)) or use another strategy"
        )


def in_size(layer: nn.Module) -> int:
    return layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels


class Adapter(nn.Module):
    """The lateral adapter of eq. 2: U σ(V α h^(<k)), with V, U linear or convolutional."""

    def __init__(self, layer: nn.Module, earlier: int, ratio: float, alpha: float) -> None:
        super().__init__()
        width = in_size(layer)
        reduced = max(1, round(width * ratio))
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        if isinstance(layer, nn.Linear):
            self.project = nn.Linear(width * earlier, reduced)
            self.lateral = nn.Linear(reduced, layer.out_features, bias=False)
        else:
            self.project = nn.Conv2d(width * earlier, reduced, 1)
            self.lateral = nn.Conv2d(reduced, layer.out_channels, layer.kernel_size, layer.stride,
                                     layer.padding, layer.dilation, bias=False)

    def forward(self, earlier: list[torch.Tensor]) -> torch.Tensor:
        return self.lateral(F.relu(self.project(self.alpha * torch.cat(earlier, dim=1))))


class Column(nn.Module):
    """One task's copy of the base network's weighted layers, plus its adapters (from layer 2)."""

    def __init__(self, layers: list[nn.Module], adapters: list[Adapter]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.adapters = nn.ModuleList(adapters)


class ProgressiveNet(nn.Module):
    """Columns of the base network joined by lateral adapters; column t answers for task t."""

    def __init__(self, base: nn.Module, adapter_ratio: float = 1.0) -> None:
        super().__init__()
        chain = parse_chain(base, "pnn")
        self.adapter_ratio = adapter_ratio
        self.pre = nn.Sequential(*chain.pre)
        self.posts = nn.ModuleList(nn.Sequential(*post) for post in chain.posts)
        self.columns = nn.ModuleList()
        self._base_layers = chain.layers  # a plain list: templates, not registered parameters

    def add_column(self, generator: torch.Generator | None = None) -> Column:
        """Append a column: the base layers themselves first, then fresh copies with adapters."""
        k = len(self.columns)
        if k == 0:
            layers = list(self._base_layers)
        else:
            layers = [copy.deepcopy(layer) for layer in self._base_layers]
            for layer in layers:
                _reinitialise(layer, generator)
        adapters = []
        if k > 0:
            for layer in layers[1:]:
                alpha = float(torch.rand((), generator=generator)) * 0.1
                adapter = Adapter(layer, k, self.adapter_ratio, alpha)
                for module in (adapter.project, adapter.lateral):
                    _reinitialise(module, generator)
                adapters.append(adapter)
        column = Column(layers, adapters)
        column.requires_grad_(True)  # copies of column 0 (frozen by now) would inherit the freeze
        self.columns.append(column)
        return column

    def forward_column(self, x: torch.Tensor, column: int) -> torch.Tensor:
        """Output of ``column``, running columns 0..column (each feeds the later ones)."""
        x = self.pre(x)
        hidden: list[list[torch.Tensor]] = []  # hidden[k][i]: column k's block i output
        for k in range(column + 1):
            h, outs = x, []
            for i, (layer, post) in enumerate(zip(self.columns[k].layers, self.posts)):
                z = layer(h)
                if k > 0 and i > 0:
                    z = z + self.columns[k].adapters[i - 1]([hidden[j][i - 1] for j in range(k)])
                h = post(z)
                outs.append(h)
            hidden.append(outs)
        return hidden[column][-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_column(x, len(self.columns) - 1)


def _reinitialise(module: nn.Module, generator: torch.Generator | None) -> None:
    """Redraw a Linear/Conv2d's weights and bias from ``generator`` with PyTorch's default
    distribution, U(−1/√fan_in, 1/√fan_in) (kaiming-uniform with a = √5 for the weights)."""
    bound = 1.0 / module.weight[0].numel() ** 0.5
    with torch.no_grad():
        for param in module.parameters():
            param.copy_((torch.rand(param.shape, generator=generator) * 2 - 1) * bound)


def out_size(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def hidden_widths(model: nn.Module, method: str) -> list[int]:
    """Output units/channels of every weighted layer of ``model``'s chain but the last."""
    return [out_size(layer) for layer in parse_chain(model, method).layers[:-1]]


def widen(model: nn.Module, widths: list[int], method: str,
          generator: torch.Generator | None = None) -> None:
    """Grow the hidden layers of ``model``'s chain to ``widths`` outputs, in place.

    Old weights keep their positions (new units come last; after a Conv2d → Flatten the new
    channels' features come last too, the layout being channel-major). New weights are drawn
    like PyTorch's default initialisation from ``generator``; new units' biases are zero.
    """
    chain = parse_chain(model, method)
    old = [out_size(layer) for layer in chain.layers]
    new = [*widths, old[-1]]
    if any(n < o for n, o in zip(new, old)):
        raise LifelongError(f"{method} can only grow layers: widths {widths} < {old[:-1]}")
    for i, (name, layer) in enumerate(zip(chain.names, chain.layers)):
        in_old = in_size(layer)
        in_new = in_old if i == 0 else new[i - 1] * (in_old // old[i - 1])
        if (in_new, new[i]) == (in_old, old[i]):
            continue
        if isinstance(layer, nn.Linear):
            fresh: nn.Module = nn.Linear(in_new, new[i], bias=layer.bias is not None)
        else:
            fresh = nn.Conv2d(in_new, new[i], layer.kernel_size, layer.stride, layer.padding,
                              layer.dilation, bias=layer.bias is not None)
        fresh = fresh.to(layer.weight.device, layer.weight.dtype)
        _reinitialise(fresh, generator)
        with torch.no_grad():
            fresh.weight[: old[i], :in_old] = layer.weight
            if layer.bias is not None:
                fresh.bias.zero_()
                fresh.bias[: old[i]] = layer.bias
        fresh.requires_grad_(layer.weight.requires_grad)
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, fresh)
