"""PNN: the adapter formula (eq. 2) by hand, frozen columns, growth, unsupported models."""

import pytest
import torch
from torch import nn

import lifelong as ll
from lifelong.models.columns import ProgressiveNet
from lifelong.strategies.pnn import PNN


def two_column_net():
    """Input 2 → hidden 2 (ReLU) → output 2, two columns."""
    base = ll.make_model("mlp", (1, 1, 2), 2, hidden=(2,))
    net = ProgressiveNet(base)
    net.add_column(torch.Generator().manual_seed(0))
    net.add_column(torch.Generator().manual_seed(1))
    return net


def test_column_output_follows_the_adapter_equation_by_hand():
    net = two_column_net()
    c0, c1 = net.columns
    with torch.no_grad():
        c0.layers[0].weight.copy_(torch.eye(2))
        c0.layers[0].bias.zero_()
        c1.layers[0].weight.copy_(2 * torch.eye(2))
        c1.layers[0].bias.zero_()
        c1.layers[1].weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
        c1.layers[1].bias.zero_()
        adapter = c1.adapters[0]
        adapter.alpha.fill_(0.5)
        adapter.project.weight.copy_(torch.eye(2))
        adapter.project.bias.zero_()
        adapter.lateral.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 3.0]]))
    x = torch.tensor([[[[1.0, -2.0]]]])
    # column 0: h = relu(x) = [1, 0]; column 1: h' = relu(2x) = [2, 0]
    # out = W2' h' + U relu(V (0.5 h)) = [2, 0] + U [0.5, 0] = [2, 0] + [1, 0] = [3, 0]
    assert torch.equal(net.forward_column(x, 1), torch.tensor([[3.0, 0.0]]))


def test_parameter_count_of_two_columns():
    net = two_column_net()
    column = (2 * 2 + 2) + (2 * 2 + 2)  # two Linear layers
    adapter = 1 + (2 * 2 + 2) + 2 * 2  # α, V (2→2 with bias), U (2→2, no bias)
    assert sum(p.numel() for p in net.parameters()) == 2 * column + adapter


def test_convolutional_adapters_project_with_1x1_and_map_like_the_layer():
    base = ll.make_model("cnn", (1, 8, 8), 4, channels=(3, 5), hidden=6)
    net = ProgressiveNet(base)
    for k in range(3):
        net.add_column(torch.Generator().manual_seed(k))
    conv_adapter = net.columns[2].adapters[0]
    assert conv_adapter.project.kernel_size == (1, 1) and conv_adapter.project.in_channels == 2 * 3
    assert conv_adapter.lateral.kernel_size == (3, 3) and conv_adapter.lateral.out_channels == 5
    assert net.forward_column(torch.rand(4, 1, 8, 8), 2).shape == (4, 4)


def test_earlier_columns_are_frozen_and_the_new_one_trains(tiny_task_stream):
    torch.manual_seed(0)
    model = ll.make_model("mlp", tiny_task_stream.input_shape, 4, hidden=(8,))
    strategy = PNN()
    strategy.setup(tiny_task_stream, ll.TrainConfig(device="cpu"))
    net = strategy.before_task(model, tiny_task_stream[0])
    net = strategy.before_task(net, tiny_task_stream[1])
    assert strategy.columns_ == 2
    assert not any(p.requires_grad for p in net.columns[0].parameters())
    assert all(p.requires_grad for p in net.columns[1].parameters())


def test_models_that_are_not_linear_conv_chains_get_a_clear_error(tiny_task_stream):
    batchnorm = nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4))
    with pytest.raises(ll.LifelongError, match="'2' is a BatchNorm1d"):
        ll.fit(tiny_task_stream, batchnorm, PNN(), ll.TrainConfig(device="cpu", epochs=1))

    class Reordered(nn.Module):
        def __init__(self):
            super().__init__()
            self.out = nn.Linear(8, 4)
            self.inp = nn.Linear(36, 8)

        def forward(self, x):
            return self.out(torch.relu(self.inp(x.flatten(1))))

    with pytest.raises(ll.LifelongError, match="run in the order they are defined"):
        ll.fit(tiny_task_stream, Reordered(), PNN(), ll.TrainConfig(device="cpu", epochs=1))


def test_bad_adapter_ratio_is_refused():
    with pytest.raises(ll.LifelongError, match="adapter_ratio must be in"):
        ll.make_strategy("pnn", adapter_ratio=0)
