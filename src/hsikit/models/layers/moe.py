"""Mixture-of-experts feed-forward layer with top-k routing and a differentiable balance loss.

Each token is sent to the ``top_k`` experts (two-layer MLPs) its router scores highest;
the output is the sum of those experts' outputs weighted by the renormalised router
probabilities. During training each expert accepts at most
``capacity = ⌊capacity_factor · T · top_k / E⌋`` assignments (``T`` tokens, ``E``
experts), admitted in token order; the remaining assignments are dropped (weight 0, the
block's residual carries the token). At evaluation no assignment is dropped, so a
prediction never depends on the other images of the batch.

Balance loss (Fedus, Zoph, Shazeer, *Switch Transformers*, JMLR 2022, eq. 4, for top-k):
``L = E · Σ_e f_e · P_e`` where ``f_e`` is the fraction of the ``T · top_k`` assignments
routed to expert ``e`` (a count: no gradient) and ``P_e`` the mean router probability of
``e`` over the tokens (differentiable, so the gradient reaches the router). ``L = 1`` when
the router probabilities are uniform, whatever the dispatch; when dispatch follows the
probabilities (``f ≈ P``), ``L = E·Σ P_e² >= 1`` with equality only for uniform routing.
The HSIFusionNet reference built its load loss from counts alone, which has no gradient
(``specs/001_hsifusion_sharp.md`` §2.3).

Only the experts that receive tokens run, each on its own tokens (the reference ran every
expert on every token during training).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from hsikit.errors import ConfigError, ShapeMismatchError


class ExpertMLP(nn.Module):
    """``Linear(d, h) → GELU → Dropout → Linear(h, d) → Dropout`` on ``(T, d)`` tokens."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.activation = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(T, d)`` → ``(T, d)``."""
        return self.dropout(self.fc2(self.dropout(self.activation(self.fc1(x)))))


def switch_balance_loss(probabilities: torch.Tensor, expert_choice: torch.Tensor) -> torch.Tensor:
    """``E · Σ_e f_e · P_e`` for router ``probabilities`` ``(T, E)`` and chosen experts ``(T, k)``.

    ``f_e`` = share of the ``T·k`` choices that name expert ``e`` (no gradient); ``P_e`` =
    mean probability of ``e`` (gradient flows through it). Returns a float32 scalar.
    """
    num_experts = probabilities.shape[-1]
    counts = torch.zeros(num_experts, device=probabilities.device, dtype=torch.float32)
    counts.scatter_add_(0, expert_choice.reshape(-1), torch.ones(expert_choice.numel(), device=counts.device))
    dispatch_fraction = counts / max(1, expert_choice.numel())
    mean_probability = probabilities.float().mean(dim=0)
    return num_experts * (dispatch_fraction * mean_probability).sum()


class MixtureOfExperts(nn.Module):
    """Top-k routed mixture of MLP experts on ``(..., dim)`` tokens.

    After each forward pass, :attr:`balance_loss` holds the differentiable balance loss of
    that pass (module docstring) and :attr:`overflow_fraction` the share of assignments
    dropped by the capacity limit (a detached scalar tensor, for logging).

    Args:
        dim: token channels ``d``.
        num_experts: ``E`` (>= 2).
        mlp_ratio: expert hidden width ``h = round(mlp_ratio · d)``.
        dropout: dropout inside the experts.
        top_k: experts per token (2; at most ``E``).
        capacity_factor: training capacity multiplier (1.25; <= 0 disables the limit).
        router_noise_std: std of the Gaussian noise added to the router logits in training (0.1).
    """

    def __init__(
        self,
        dim: int,
        num_experts: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        top_k: int = 2,
        capacity_factor: float = 1.25,
        router_noise_std: float = 0.1,
    ) -> None:
        super().__init__()
        if num_experts < 2 or not 1 <= top_k <= num_experts:
            raise ConfigError(
                "MixtureOfExperts needs num_experts >= 2 and 1 <= top_k <= num_experts, got "
                f"num_experts={num_experts}, top_k={top_k}; turn the mixture off (use_moe=False) for a single MLP"
            )
        if router_noise_std < 0:
            raise ConfigError(f"router_noise_std must be >= 0, got {router_noise_std}")
        self.dim = dim
        self.num_experts = num_experts
        self.top_k = top_k
        self.capacity_factor = capacity_factor
        self.router_noise_std = router_noise_std
        self.router = nn.Linear(dim, num_experts)
        hidden = max(1, round(mlp_ratio * dim))
        self.experts = nn.ModuleList(ExpertMLP(dim, hidden, dropout) for _ in range(num_experts))
        self.balance_loss: torch.Tensor | None = None
        self.overflow_fraction: torch.Tensor | None = None

    def capacity(self, tokens: int) -> int | None:
        """Assignments one expert accepts in training for ``tokens`` tokens (None: no limit)."""
        if self.capacity_factor <= 0:
            return None
        return max(1, math.floor(self.capacity_factor * tokens * self.top_k / self.num_experts))

    def route(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Router ``(probabilities (T, E), chosen experts (T, k), renormalised gates (T, k))`` of ``(T, d)`` tokens."""
        logits = self.router(tokens).float()
        if self.training and self.router_noise_std > 0:
            logits = logits + torch.randn_like(logits) * self.router_noise_std
        probabilities = torch.softmax(logits, dim=-1)
        top_probabilities, choice = probabilities.topk(self.top_k, dim=-1)
        gates = top_probabilities / top_probabilities.sum(dim=-1, keepdim=True)
        return probabilities, choice, gates

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., dim)`` → ``(..., dim)``; also sets :attr:`balance_loss` and :attr:`overflow_fraction`."""
        if x.shape[-1] != self.dim:
            raise ShapeMismatchError(f"MixtureOfExperts({self.dim}) got tokens of shape {tuple(x.shape)}")
        tokens = x.reshape(-1, self.dim)
        probabilities, choice, gates = self.route(tokens)
        self.balance_loss = switch_balance_loss(probabilities, choice)

        admitted = torch.ones_like(choice, dtype=torch.bool)
        capacity = self.capacity(tokens.shape[0]) if self.training else None
        if capacity is not None:
            # Position of each assignment in its expert's queue, in (token, slot) order.
            one_hot = nn.functional.one_hot(choice.reshape(-1), self.num_experts)
            queue_position = (one_hot.cumsum(dim=0) * one_hot).sum(dim=-1) - 1
            admitted = (queue_position < capacity).reshape(choice.shape)
        self.overflow_fraction = 1.0 - admitted.float().mean().detach()

        output = torch.zeros_like(tokens)
        for expert_index, expert in enumerate(self.experts):
            token_index, slot = torch.nonzero((choice == expert_index) & admitted, as_tuple=True)
            if token_index.numel() == 0:
                continue
            weight = gates[token_index, slot].unsqueeze(-1).to(tokens.dtype)
            output.index_add_(0, token_index, (expert(tokens[token_index]) * weight).to(output.dtype))
        return output.reshape(x.shape)


__all__ = ["ExpertMLP", "MixtureOfExperts", "switch_balance_loss"]
