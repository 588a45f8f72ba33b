"""A small (optionally conditional) variational autoencoder: the generator of generative replay.

Kingma & Welling 2014, "Auto-Encoding Variational Bayes": the encoder gives a diagonal Gaussian
q(z|x) = N(μ, σ²), the decoder a Bernoulli p(x|z) per pixel, and training minimises the negative
evidence lower bound with the reparameterisation z = μ + σ·ε (their Eq. 10, with the closed-form
Gaussian KL of their Appendix B):

    loss(x) = − Σ_pixels [x log x̂ + (1 − x) log(1 − x̂)]  +  ½ Σ_j (μ_j² + σ_j² − log σ_j² − 1)

Conditional (Sohn et al. 2015, CVAE): a one-hot condition c (a class or a task) is appended to the
encoder's input and to the decoder's latent code, so ``sample`` can draw a chosen class or task.
Inputs are any shape with values in [0, 1]; samples come back in that shape and range (sigmoid).
``sample_grid_png`` renders samples as a PNG grid (matplotlib, Agg) for the run directory.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class VAE(nn.Module):
    """Fully connected VAE: input → hidden… → (μ, log σ²) ; z → …hidden → sigmoid → input shape.

    ``num_conditions`` > 0 makes it a conditional VAE over that many one-hot conditions.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        latent_dim: int = 32,
        hidden: Sequence[int] = (400, 400),
        num_conditions: int = 0,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.latent_dim = int(latent_dim)
        self.num_conditions = int(num_conditions)
        dim = math.prod(self.input_shape)
        hidden = [int(h) for h in hidden]
        self.encoder = _mlp([dim + self.num_conditions, *hidden, 2 * self.latent_dim])
        self.decoder = _mlp([self.latent_dim + self.num_conditions, *reversed(hidden), dim])

    def _with(self, h: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if self.num_conditions == 0:
            return h
        if cond is None:
            raise ValueError("a conditional VAE needs a condition for every example")
        return torch.cat([h, F.one_hot(cond, self.num_conditions).to(h.dtype)], dim=1)

    def encode(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²) of q(z | x, c)."""
        stats = self.encoder(self._with(x.flatten(1), cond))
        return stats[:, : self.latent_dim], stats[:, self.latent_dim :]

    def decode_logits(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The Bernoulli logits of p(x | z, c), flattened."""
        return self.decoder(self._with(z, cond))

    def decode(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The mean image x̂ in [0, 1], in the input shape."""
        return torch.sigmoid(self.decode_logits(z, cond)).view(-1, *self.input_shape)

    def loss(
        self,
        x: torch.Tensor,
        cond: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Per-example negative ELBO (reconstruction in nats + KL), shape ``(n,)``."""
        mu, logvar = self.encode(x, cond)
        eps = _normal(mu.shape, generator, mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps
        logits = self.decode_logits(z, cond)
        recon = F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="none").sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1)
        return recon + kl

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The reconstruction of ``x`` through the posterior mean (no sampling)."""
        mu, _ = self.encode(x, cond)
        return self.decode(mu, cond)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        cond: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``n`` draws x̂ = decode(z), z ~ N(0, I), for the given conditions (one per draw)."""
        z = _normal((n, self.latent_dim), generator, next(self.parameters()).device)
        return self.decode(z, cond)


def _normal(shape, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device (CPU by default), then moved."""
    where = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=where).to(device)


def sample_grid_png(images: torch.Tensor, per_row: int, labels: list[str] | None, title: str) -> bytes:
    """Render ``images`` (n, *shape) with values in [0, 1] as a PNG grid, ``per_row`` a row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = images.shape[0]
    if images.dim() == 4 and images.shape[1] in (1, 3):
        tiles = images.permute(0, 2, 3, 1)  # (n, h, w, c)
    elif images.dim() == 3:
        tiles = images.unsqueeze(-1)
    else:  # vectors: one row of pixels each
        tiles = images.reshape(n, 1, -1, 1)
    rows = -(-n // per_row)
    pad = torch.zeros(rows * per_row - n, *tiles.shape[1:])
    _, h, w, c = tiles.shape
    grid = torch.cat([tiles.detach().cpu(), pad]).view(rows, per_row, h, w, c)
    grid = grid.permute(0, 2, 1, 3, 4).reshape(rows * h, per_row * w, c).clamp(0, 1).numpy()
    fig = Figure(figsize=(max(2.0, per_row * 0.6), max(1.5, rows * 0.6 * h / w + 0.5)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(grid[..., 0] if c == 1 else grid, cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([h * (i + 0.5) for i in range(rows)] if labels else [])
    if labels:
        ax.set_yticklabels(labels, fontsize=7)
    ax.set_title(title, fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()
