"""Augmentation of training batches in the loop: random crop with black padding and random
horizontal flip, per example, on a batch tensor (n, c, h, w) — torch only, no per-example loop.

The standard CIFAR augmentation (He et al. 2016, §4.2; DER's and Mammoth's rehearsal methods
train with it): pad every image by ``pad`` black pixels on each side, cut a random h×w window out
of the padded image (offsets drawn uniformly in 0..2·pad for rows and columns), and mirror it
left–right with probability ``flip``. The draws come from a ``torch.Generator`` on the CPU (the
loop's batch generator, which checkpoints save, so a resumed run draws the same numbers) and are
applied on the batch's own device. An offset of (pad, pad) without a flip gives the image back
unchanged. The padding is black in the stream's units (``black``): 0 for images in [0, 1],
−mean/std per channel for normalised ones — as cropping before normalising (torchvision's CIFAR
pipeline) gives.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import LifelongError

Augment = Callable[[torch.Tensor], torch.Tensor]
"""A function from a batch of training inputs to an augmented batch of the same shape."""

PAD = 4
"""Zeros added on each side before the random crop (4 for 32×32 CIFAR images)."""


def check_images(shape: tuple[int, ...] | torch.Size, what: str = "the inputs") -> None:
    """One line refusing augmentation of inputs that are not images (c, h, w) per example."""
    if len(shape) != 3:
        raise LifelongError(f"augmentation (random crop and flip) needs image inputs (c, h, w) per example, "
                            f"but {what} have shape {tuple(shape)}; use --no-augment "
                            "(augment = false) or give image-shaped inputs")


def black(meta: dict) -> torch.Tensor:
    """The value of a black pixel per channel in a stream's units: −mean/std where the stream
    records a normalisation (``meta["normalization"]``), else 0."""
    norm = meta.get("normalization")
    if not norm:
        return torch.zeros(1)
    return -torch.tensor(norm["mean"]) / torch.tensor(norm["std"])


def crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int = PAD,
              fill: torch.Tensor | float = 0.0) -> torch.Tensor:
    """``x`` (n, c, h, w) padded by ``pad`` pixels of ``fill`` (one value, or one per channel) on
    each side, each example ``i`` cropped to the h×w window whose top-left corner is
    ``offsets[i] = (row, column)`` in the padded image, and mirrored left–right where ``flips[i]``.
    One gather over the padded batch."""
    check_images(tuple(x.shape[1:]))
    n, c, h, w = x.shape
    padded = x.new_empty(n, c, h + 2 * pad, w + 2 * pad)
    padded[:] = torch.as_tensor(fill, dtype=x.dtype).to(x.device).reshape(-1, 1, 1)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    padded = padded.reshape(n, c, (h + 2 * pad) * (w + 2 * pad))
    offsets, flips = offsets.to(x.device), flips.to(x.device)
    rows = offsets[:, :1] + torch.arange(h, device=x.device)
    cols = offsets[:, 1:] + torch.arange(w, device=x.device)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    index = (rows[:, :, None] * (w + 2 * pad) + cols[:, None, :]).reshape(n, 1, h * w)
    return padded.gather(2, index.expand(n, c, h * w)).reshape(n, c, h, w)


def draw(n: int, generator: torch.Generator, pad: int = PAD, flip: float = 0.5
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """(offsets (n, 2) in 0..2·pad, flips (n,) booleans with probability ``flip``), on the CPU."""
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < flip
    return offsets, flips


def random_crop_flip(generator: torch.Generator, pad: int = PAD, flip: float = 0.5,
                     fill: torch.Tensor | float = 0.0) -> Augment:
    """The augmentation as a function of a batch, drawing its offsets and flips from ``generator``."""

    def augment(x: torch.Tensor) -> torch.Tensor:
        return crop_flip(x, *draw(x.shape[0], generator, pad, flip), pad, fill)

    return augment
