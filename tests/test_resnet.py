"""The ResNet-18s: sizes counted by formula, outputs, the last Linear, one-line refusals."""

import pytest
import torch
from torch import nn

import lifelong as ll


def resnet18_parameters(channels: int, nf: int, classes: int) -> int:
    """Weights of the GEM code's ResNet-18 counted by hand: bias-free convolutions, BatchNorm
    (γ, β per channel), a 1×1 shortcut + BN where a stage changes width, the final Linear."""
    total = 9 * channels * nf + 2 * nf  # first 3×3 conv + BN
    inputs = nf
    for width in (nf, 2 * nf, 4 * nf, 8 * nf):
        for block in range(2):
            total += 9 * inputs * width + 2 * width + 9 * width * width + 2 * width
            if block == 0 and inputs != width:
                total += inputs * width + 2 * width
            inputs = width
    return total + 8 * nf * classes + classes


def test_the_reduced_resnet_has_the_papers_size_and_shape():
    torch.manual_seed(0)
    model = ll.make_model("resnet18-reduced", (3, 32, 32), 10)
    count = sum(p.numel() for p in model.parameters())
    assert count == resnet18_parameters(3, 20, 10) == 1_094_750
    out = model(torch.rand(4, 3, 32, 32))
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    last = list(model.modules())[-1]
    assert isinstance(last, nn.Linear) and (last.in_features, last.out_features) == (160, 10)
    assert [m for m in model.modules() if isinstance(m, nn.Linear)] == [last]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 1 + 2 * 8 + 3


def test_the_standard_resnet18_is_the_usual_cifar_one_and_nf_is_the_width():
    model = ll.make_model("resnet18", (3, 32, 32), 10)
    assert sum(p.numel() for p in model.parameters()) == resnet18_parameters(3, 64, 10) == 11_173_962
    small = ll.make_model("resnet18-reduced", (1, 28, 28), 4, nf=4)
    assert sum(p.numel() for p in small.parameters()) == resnet18_parameters(1, 4, 4)
    assert small(torch.rand(2, 1, 28, 28)).shape == (2, 4)
    assert small(torch.rand(2, 1, 8, 8)).shape == (2, 4)  # adaptive pooling: any image size


@pytest.mark.parametrize("shape, options, message", [
    ((784,), {}, r"resnet18-reduced needs image inputs \(channels, height, width\), got shape \(784,\)"),
    ((3, 32, 32), {"nf": 0}, "resnet18-reduced nf must be a positive integer, got 0"),
    ((3, 32, 32), {"nf": 2.5}, "resnet18-reduced nf must be a positive integer, got 2.5"),
])
def test_bad_shapes_and_options_are_one_line_errors(shape, options, message):
    with pytest.raises(ll.LifelongError, match=message) as excinfo:
        ll.make_model("resnet18-reduced", shape, 4, **options)
    assert "\n" not in str(excinfo.value)
    with pytest.raises(ll.LifelongError, match="model 'resnet18' has no option 'nf'"):
        ll.make_model("resnet18", (3, 32, 32), 4, nf=20)
