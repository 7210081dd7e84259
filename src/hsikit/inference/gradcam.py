"""Grad-CAM (Selvaraju et al., ICCV 2017) for segmentation models, as SSMGNet's ``Structure.grad_cam``.

For a target class k and the feature maps ``A`` (C', h, w) that enter a chosen layer:

1. forward the image; the score is the **sum of the class-k logits over all pixels**;
2. ``α_c`` = spatial mean of ``∂score / ∂A_c``;
3. ``cam = ReLU(Σ_c α_c A_c)``, resized (bilinear) to the input's H × W when smaller;
4. min–max normalised to [0, 1] per image (all zeros when the map is constant).

The default layer is the **last** ``nn.Conv2d`` of the model, i.e. its classifier head: the
maps entering it are SSMGNet's attended stage-4 features ``feat4 = w4 ⊙ features`` (the
reference's choice) and the U-Net's last decoder features. For a 1 × 1 head with weights
``W`` the gradient is ``W[k]`` at every pixel, so ``cam ∝ ReLU(logit_k − bias_k)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.models.segmentation.output import segmentation_logits


def last_conv_layer(model: nn.Module) -> nn.Conv2d:
    """The last ``nn.Conv2d`` in ``model.modules()`` order (the classifier head of hsikit's segmenters)."""
    last = None
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            last = module
    if last is None:
        raise ConfigError(f"{type(model).__name__} has no Conv2d layer; pass layer= for Grad-CAM")
    return last


def grad_cam(
    model: nn.Module,
    image: torch.Tensor | np.ndarray,
    target_class: int,
    *,
    layer: nn.Module | None = None,
) -> np.ndarray:
    """Grad-CAM heat map of ``target_class`` for one image.

    Args:
        model: a segmentation model returning ``(B, K, H, W)`` logits (or a
            :class:`~hsikit.models.segmentation.SegmentationOutput`); it is run in eval mode.
        image: ``(C, H, W)`` or ``(1, C, H, W)`` (any float dtype; moved to the model's device).
        target_class: class index k in ``0..K-1``.
        layer: the module whose *input* feature maps are explained (default: the last Conv2d).

    Returns:
        ``(H, W)`` float32 in [0, 1].

    Raises:
        ShapeMismatchError: not a single image; ConfigError: class index out of range.
    """
    batch = torch.as_tensor(image)
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4 or batch.shape[0] != 1:
        raise ShapeMismatchError(f"grad_cam explains one image (C, H, W) or (1, C, H, W), got {tuple(batch.shape)}")
    parameter = next(iter(model.parameters()), None)
    if parameter is not None:
        batch = batch.to(device=parameter.device, dtype=parameter.dtype)
    hooked = last_conv_layer(model) if layer is None else layer
    captured: list[torch.Tensor] = []

    def keep_input(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        captured.append(inputs[0])

    was_training = model.training
    model.eval()
    handle = hooked.register_forward_pre_hook(keep_input)
    try:
        with torch.enable_grad():
            # the input requires a gradient so that the features have one even for frozen weights
            logits = segmentation_logits(model(batch.detach().requires_grad_(True)))
            classes = logits.shape[1]
            if not 0 <= int(target_class) < classes:
                raise ConfigError(f"target_class={target_class} is not a class index of this model (0..{classes - 1})")
            if not captured:
                raise ConfigError("the chosen layer was not used in the forward pass; pick a layer the model runs")
            features = captured[-1]
            score = logits[:, int(target_class)].sum()
            (gradient,) = torch.autograd.grad(score, features)
    finally:
        handle.remove()
        if was_training:
            model.train()
    weights = gradient.mean(dim=(2, 3), keepdim=True)  # α_c, (1, C', 1, 1)
    cam = F.relu((weights * features).sum(dim=1, keepdim=True)).detach()  # (1, 1, h, w)
    height, width = batch.shape[-2:]
    if cam.shape[-2:] != (height, width):
        cam = F.interpolate(cam, size=(height, width), mode="bilinear", align_corners=False)
    cam = cam[0, 0].float()
    low, high = cam.min(), cam.max()
    if high > low:
        cam = (cam - low) / (high - low)
    else:
        cam = torch.zeros_like(cam)
    return cam.cpu().numpy().astype(np.float32)


__all__ = ["grad_cam", "last_conv_layer"]
