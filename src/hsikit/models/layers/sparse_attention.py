"""Top-k sparse attention streamed over query and key blocks, with a 2-D local-window fallback.

This is the attention kernel of SHARP (``specs/001_hsifusion_sharp.md`` §3.2,
``sparse_attention_topk_streaming``), written for hsikit. For ``N`` tokens and a sparsity
ratio ``ρ``, each query keeps its ``k_keep = max(1, ⌊N·(1-ρ)⌋)`` highest-scoring keys
(optionally capped at ``k_cap``), takes a softmax over those scores only and returns the
weighted sum of their values. :func:`sparse_topk_attention` chooses the path:

* ``k_keep >= N`` and ``N <= max_tokens`` (e.g. ``ρ = 0``): dense softmax attention;
* ``N > max_tokens``: local attention, each query attending the ``s × s`` keys around it
  on the image grid (:func:`local_window_attention_2d`). The reference used a 1-D window
  over the raster-flattened sequence, whose neighbourhoods wrap from one image row to the
  next; a 2-D window has no such wrap;
* otherwise: streaming top-k (:func:`topk_attention`). Queries are processed
  ``q_block_size`` at a time; for each query block the keys are scanned ``block_size``
  at a time, each block's best scores are merged into a running top-k, and the values
  are accumulated block by block. Peak memory is ``O(G · q_block_size · block_size)``
  instead of ``O(G · N²)`` (``G`` = batch × heads).

All functions take ``q, k`` of shape ``(..., N, Dq)`` and ``v`` of shape ``(..., N, Dv)``
(any leading batch/head axes, the same for all three) and return ``(..., N, Dv)`` in the
dtype of ``v``; scores and softmax weights are computed in float32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, owner: str) -> None:
    if (
        q.ndim < 2
        or q.shape != k.shape
        or v.shape[:-1] != k.shape[:-1]
    ):
        raise ShapeMismatchError(
            f"{owner}: q and k must have the same shape (..., N, Dq) and v the shape (..., N, Dv); got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )


def _flatten_groups(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-2], x.shape[-1])


DENSE_SCORE_BUDGET = 2**26
"""Largest score matrix (elements, over all batch/head groups) :func:`dense_attention` builds at once off CUDA."""


def dense_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float | None = None,
    score_budget: int = DENSE_SCORE_BUDGET,
) -> torch.Tensor:
    """``softmax(q kᵀ · scale) v`` over all keys; ``scale`` defaults to ``Dq^-1/2``.

    On CUDA this is one :func:`torch.nn.functional.scaled_dot_product_attention` call (its
    fused kernels never hold the score matrix). Elsewhere the math kernel would build the
    whole ``(..., N, M)`` score matrix — 3 GB for a 482 × 512 image against 1024 keys and
    3 heads — so queries are processed in chunks of at most ``score_budget`` scores in
    total (256 MB of float32 by default). The result is the same either way.

    Shapes: ``(..., N, Dq), (..., M, Dq), (..., M, Dv)`` → ``(..., N, Dv)``.
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    # Queries/keys may be float32 features (SHARP's RBF maps) next to half-precision values.
    common = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    q, k, values = q.to(common), k.to(common), v.to(common)
    queries, keys = q.shape[-2], k.shape[-2]
    groups = math.prod(q.shape[:-2])
    chunk = max(1, score_budget // max(1, groups * keys))
    if q.device.type == "cuda" or queries <= chunk:
        return F.scaled_dot_product_attention(q, k, values, scale=scale).to(v.dtype)
    return torch.cat(
        [
            F.scaled_dot_product_attention(q[..., start : start + chunk, :], k, values, scale=scale)
            for start in range(0, queries, chunk)
        ],
        dim=-2,
    ).to(v.dtype)


def streaming_topk_keys(
    q: torch.Tensor, k: torch.Tensor, k_keep: int, scale: float, block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k_keep`` highest scores ``q·kᵀ·scale`` of every query, found by scanning keys in blocks.

    For each block of ``block_size`` keys the block's best ``min(k_keep, block)`` scores are
    merged with the running best and the top ``k_keep`` are kept, so only a
    ``(G, Nq, block_size)`` score block exists at any time.

    Args:
        q: ``(G, Nq, D)`` queries.
        k: ``(G, Nk, D)`` keys.
        k_keep: how many keys each query keeps (``1 <= k_keep <= Nk``).
        scale: score multiplier.
        block_size: keys per block (>= 1).

    Returns:
        ``(scores, indices)``, both ``(G, Nq, k_keep)``: float32 scores, in no particular
        order, and the indices of their keys in ``0 .. Nk-1``. The same set as a top-k over
        the full score matrix (up to the choice among tied scores).
    """
    key_count = k.shape[-2]
    if not 1 <= k_keep <= key_count or block_size < 1:
        raise ConfigError(
            f"streaming_topk_keys needs 1 <= k_keep <= {key_count} keys and block_size >= 1, "
            f"got k_keep={k_keep}, block_size={block_size}"
        )
    best_scores: torch.Tensor | None = None
    best_indices: torch.Tensor | None = None
    for start in range(0, key_count, block_size):
        block = k[:, start : start + block_size]
        scores = torch.matmul(q, block.transpose(-2, -1)).float() * scale
        # Unsorted selection: the softmax does not need an order, and sorting doubles the cost on CPU.
        block_scores, block_indices = scores.topk(min(k_keep, scores.shape[-1]), dim=-1, sorted=False)
        block_indices = block_indices + start
        if best_scores is None or best_indices is None:
            best_scores, best_indices = block_scores, block_indices
            continue
        merged_scores = torch.cat([best_scores, block_scores], dim=-1)
        merged_indices = torch.cat([best_indices, block_indices], dim=-1)
        best_scores, chosen = merged_scores.topk(min(k_keep, merged_scores.shape[-1]), dim=-1, sorted=False)
        best_indices = merged_indices.gather(-1, chosen)
    assert best_scores is not None and best_indices is not None
    return best_scores, best_indices


def _sum_selected_values(
    weights: torch.Tensor, indices: torch.Tensor, v: torch.Tensor, block_size: int
) -> torch.Tensor:
    # Σ_j weights[..., j] · v[indices[..., j]] without gathering a (G, Nq, k_keep, Dv) tensor:
    # per key block, the weights of the keys in that block are scattered into a dense
    # (G, Nq, block) matrix (one spare column collects the keys of other blocks) and
    # multiplied with the block's values.
    groups, queries = weights.shape[0], weights.shape[1]
    key_count, value_dim = v.shape[-2], v.shape[-1]
    output = torch.zeros(groups, queries, value_dim, device=v.device, dtype=torch.float32)
    for start in range(0, key_count, block_size):
        stop = min(start + block_size, key_count)
        width = stop - start
        inside = (indices >= start) & (indices < stop)
        columns = torch.where(inside, indices - start, torch.full_like(indices, width))
        dense = torch.zeros(groups, queries, width + 1, device=v.device, dtype=torch.float32)
        dense.scatter_add_(-1, columns, torch.where(inside, weights, torch.zeros_like(weights)))
        output += torch.matmul(dense[..., :width], v[:, start:stop].float())
    return output


def topk_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_keep: int,
    *,
    scale: float | None = None,
    block_size: int = 2048,
    q_block_size: int = 1024,
) -> torch.Tensor:
    """Top-k attention streamed over query blocks and key blocks.

    Each query keeps its ``k_keep`` best keys (:func:`streaming_topk_keys`), takes a
    softmax over their scores and sums their values. ``k_keep = N`` gives dense attention.

    Shapes: ``(..., N, Dq), (..., N, Dq), (..., N, Dv)`` → ``(..., N, Dv)``.
    """
    _check_qkv(q, k, v, "topk_attention")
    if block_size < 1 or q_block_size < 1:
        raise ConfigError(f"block_size and q_block_size must be >= 1, got {block_size} and {q_block_size}")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    leading = v.shape[:-2]
    queries, keys, values = _flatten_groups(q), _flatten_groups(k), _flatten_groups(v)
    outputs = []
    for start in range(0, queries.shape[1], q_block_size):
        scores, indices = streaming_topk_keys(queries[:, start : start + q_block_size], keys, k_keep, scale, block_size)
        weights = torch.softmax(scores, dim=-1)
        outputs.append(_sum_selected_values(weights, indices, values, block_size))
    return torch.cat(outputs, dim=1).reshape(*leading, v.shape[-2], v.shape[-1]).to(v.dtype)


def window_side_for_tokens(window_tokens: int) -> int:
    """Side ``s`` of the square 2-D window that replaces a 1-D window of ``window_tokens`` keys.

    ``s = round(sqrt(window_tokens))``, made odd (so the window is centred on its query):
    49 → 7 (the same 49 keys per query as the reference's 1-D window), 25 → 5, 64 → 9.
    """
    if window_tokens < 1:
        raise ConfigError(f"the local attention window must hold >= 1 token, got {window_tokens}")
    side = max(1, round(math.sqrt(window_tokens)))
    return side if side % 2 else side + 1


def local_window_neighbours(
    height: int, width: int, side: int, query_indices: torch.Tensor
) -> torch.Tensor:
    """Raster indices of the keys each query attends in :func:`local_window_attention_2d`.

    The window of a query at (row, col) covers rows ``r0 .. r0 + s_h - 1`` with
    ``r0 = clamp(row - s//2, 0, height - s_h)`` and ``s_h = min(s, height)`` (columns
    alike): centred where possible and shifted inwards at the borders, so every query
    sees ``s_h · s_w`` distinct pixels of the image and no padding.

    Args:
        height, width: the token grid.
        side: window side ``s`` (odd).
        query_indices: ``(n,)`` raster indices of the queries.

    Returns:
        ``(n, s_h · s_w)`` long tensor of key indices, window rows in order.
    """
    side_h, side_w = min(side, height), min(side, width)
    half = side // 2
    rows = torch.div(query_indices, width, rounding_mode="floor")
    cols = query_indices - rows * width
    row_start = (rows - half).clamp(0, height - side_h)
    col_start = (cols - half).clamp(0, width - side_w)
    window_rows = row_start[:, None] + torch.arange(side_h, device=query_indices.device)[None, :]
    window_cols = col_start[:, None] + torch.arange(side_w, device=query_indices.device)[None, :]
    return (window_rows[:, :, None] * width + window_cols[:, None, :]).reshape(len(query_indices), side_h * side_w)


def local_window_attention_2d(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    height: int,
    width: int,
    side: int,
    *,
    scale: float | None = None,
    q_block_size: int = 1024,
) -> torch.Tensor:
    """Each query attends the ``side × side`` keys around it on the ``height × width`` grid.

    Tokens are in raster order (``N = height · width``). Windows are clamped inside the
    image (:func:`local_window_neighbours`), so a border query sees as many keys as an
    interior one. Queries are processed ``q_block_size`` at a time: memory
    ``O(G · q_block_size · side² · D)``.

    Shapes: ``(..., N, Dq), (..., N, Dq), (..., N, Dv)`` → ``(..., N, Dv)``.
    """
    _check_qkv(q, k, v, "local_window_attention_2d")
    tokens = q.shape[-2]
    if tokens != height * width:
        raise ShapeMismatchError(
            f"local_window_attention_2d: {tokens} tokens cannot lie on a {height} x {width} grid; pass the "
            "spatial shape the tokens were flattened from"
        )
    if side < 1 or side % 2 == 0 or q_block_size < 1:
        raise ConfigError(f"the window side must be odd and >= 1 and q_block_size >= 1, got {side} and {q_block_size}")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    leading = v.shape[:-2]
    queries, keys, values = _flatten_groups(q), _flatten_groups(k), _flatten_groups(v)
    outputs = []
    for start in range(0, tokens, q_block_size):
        query_indices = torch.arange(start, min(start + q_block_size, tokens), device=q.device)
        neighbours = local_window_neighbours(height, width, side, query_indices)  # (n, K)
        window_keys = keys[:, neighbours]  # (G, n, K, Dq)
        window_values = values[:, neighbours]  # (G, n, K, Dv)
        scores = torch.einsum("gnd,gnkd->gnk", queries[:, start : start + len(query_indices)], window_keys)
        weights = torch.softmax(scores.float() * scale, dim=-1)
        outputs.append(torch.einsum("gnk,gnkd->gnd", weights, window_values.float()))
    return torch.cat(outputs, dim=1).reshape(*leading, tokens, v.shape[-1]).to(v.dtype)


def kept_keys(tokens: int, sparsity: float, k_cap: int | None) -> int:
    """``k_keep = max(1, ⌊tokens·(1 - sparsity)⌋)``, capped at ``k_cap`` when ``sparsity > 0``.

    With ``sparsity == 0`` the cap is ignored (every key is kept: dense attention), as in SHARP.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(
            f"the attention sparsity ratio is the fraction of keys dropped per query and must be in [0, 1), "
            f"got {sparsity}; use 0 for dense attention"
        )
    # The epsilon absorbs binary rounding: 100 · (1 - 0.9) is 9.999999999999998 in floating point.
    keep = max(1, math.floor(tokens * (1.0 - sparsity) + 1e-9))
    if sparsity > 0 and k_cap is not None and k_cap > 0:
        keep = min(keep, k_cap)
    return keep


def sparse_topk_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    sparsity: float,
    spatial_shape: tuple[int, int] | None = None,
    block_size: int = 2048,
    max_tokens: int = 8192,
    window_size: int = 49,
    k_cap: int | None = 1024,
    q_block_size: int = 1024,
    scale: float | None = None,
) -> torch.Tensor:
    """SHARP's attention: dense, streaming top-k, or 2-D local window (see the module docstring).

    Args:
        q, k: ``(..., N, Dq)`` queries and keys; v: ``(..., N, Dv)`` values.
        sparsity: fraction ``ρ ∈ [0, 1)`` of the keys each query drops (0: dense).
        spatial_shape: ``(H, W)`` with ``H·W = N``; needed only when ``N > max_tokens``.
        block_size: keys per streamed block (2048).
        max_tokens: above this many tokens the local window is used (8192).
        window_size: keys per query of the local window, as a token count; the window is
            the ``s × s`` square of :func:`window_side_for_tokens` (49 → 7 × 7).
        k_cap: upper bound on the kept keys when ``ρ > 0`` (1024; None or <= 0: no cap).
        q_block_size: queries per streamed block (1024).
        scale: score multiplier (default ``Dq^-1/2``).

    Returns:
        ``(..., N, Dv)``.
    """
    _check_qkv(q, k, v, "sparse_topk_attention")
    tokens = q.shape[-2]
    keep = kept_keys(tokens, sparsity, k_cap)
    if tokens > max_tokens:
        if spatial_shape is None:
            raise ShapeMismatchError(
                f"sparse_topk_attention: {tokens} tokens exceed max_tokens={max_tokens}, so the 2-D local window is "
                "used, which needs spatial_shape=(H, W); pass it or raise max_tokens"
            )
        height, width = spatial_shape
        return local_window_attention_2d(
            q, k, v, height, width, window_side_for_tokens(window_size), scale=scale, q_block_size=q_block_size
        )
    if keep >= tokens:
        return dense_attention(q, k, v, scale)
    return topk_attention(q, k, v, keep, scale=scale, block_size=block_size, q_block_size=q_block_size)


__all__ = [
    "DENSE_SCORE_BUDGET",
    "dense_attention",
    "kept_keys",
    "local_window_attention_2d",
    "local_window_neighbours",
    "sparse_topk_attention",
    "streaming_topk_keys",
    "topk_attention",
    "window_side_for_tokens",
]
