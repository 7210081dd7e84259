"""Grad-CAM for segmentation models, against hand-derived maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from hsikit.errors import ConfigError, ShapeMismatchError
from hsikit.inference.gradcam import grad_cam, last_conv_layer
from hsikit.models import create_model


def _minmax(values: np.ndarray) -> np.ndarray:
    return (values - values.min()) / (values.max() - values.min())


def test_a_one_by_one_head_gives_relu_of_the_class_logit_without_bias() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.Tanh(), nn.Conv2d(5, 4, 1))
    image = torch.randn(3, 9, 11)
    for target in (0, 2):
        cam = grad_cam(model, image, target)
        with torch.no_grad():
            logit = model(image[None])[0, target] - model[2].bias[target]
        expected = _minmax(torch.relu(logit).numpy())
        np.testing.assert_allclose(cam, expected, atol=1e-5)
        assert cam.dtype == np.float32 and cam.shape == (9, 11)


def test_ssmgnet_explains_its_attended_stage4_features() -> None:
    torch.manual_seed(1)
    model = create_model("ssmgnet", in_bands=10, num_classes=3, width=4, atten_kernel=3).eval()
    image = torch.rand(10, 16, 16)
    assert last_conv_layer(model) is model.final
    cam = grad_cam(model, image, 1)
    features = model.forward_features(image[None])[1].detach().requires_grad_(True)
    score = model.final(features)[:, 1].sum()
    (gradient,) = torch.autograd.grad(score, features)
    manual = torch.relu((gradient.mean(dim=(2, 3), keepdim=True) * features).sum(1))[0].detach().numpy()
    np.testing.assert_allclose(cam, _minmax(manual), atol=1e-5)
    assert model.training is False


def test_a_smaller_feature_map_is_resized_and_bad_input_refused() -> None:
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.AvgPool2d(2), nn.Conv2d(3, 2, 1), nn.Upsample(scale_factor=2))
    cam = grad_cam(model, torch.rand(2, 8, 8), 1, layer=model[2])
    assert cam.shape == (8, 8) and 0.0 <= cam.min() and cam.max() <= 1.0
    with pytest.raises(ConfigError, match="not a class index"):
        grad_cam(model, torch.rand(2, 8, 8), 5)
    with pytest.raises(ShapeMismatchError, match="one image"):
        grad_cam(model, torch.rand(2, 2, 8, 8), 0)
