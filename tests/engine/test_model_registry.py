"""The model registry: names, captured constructor arguments, clear errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from hsikit.errors import ConfigError, UnknownNameError
from hsikit.models import registry
from hsikit.models import create_model, list_models, model_spec, register_model, tiny_model_arguments
from hsikit.models.spectral import SpectralMLP


def test_create_model_records_name_and_all_arguments() -> None:
    model = create_model("spectral_mlp", in_bands=6, num_classes=3, hidden_sizes=(8, 4))
    assert isinstance(model, SpectralMLP)
    name, arguments = model_spec(model)
    assert name == "spectral_mlp"
    # defaults are recorded too; tuples become JSON lists
    assert arguments == {"in_bands": 6, "num_classes": 3, "hidden_sizes": [8, 4], "dropout": 0.1, "norm": "batch"}
    # built directly (as LightningCLI or a user would), the arguments are captured as well
    assert model_spec(SpectralMLP(6, 3, dropout=0.0))[1]["dropout"] == 0.0


def test_list_models_by_task() -> None:
    assert "spectral_mlp" in list_models()
    assert "spectral_mlp" in list_models(task="classification")
    assert list_models(task="no-such-task") == []
    assert tiny_model_arguments("spectral_mlp") == {"hidden_sizes": [16], "dropout": 0.0}


def test_unknown_names_and_arguments_are_explained() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'spectral_mlp'"):
        create_model("spectral_mpl", in_bands=3, num_classes=2)
    with pytest.raises(ConfigError, match="no argument.*depth.*accepts: in_bands, num_classes"):
        create_model("spectral_mlp", in_bands=3, num_classes=2, depth=4)
    with pytest.raises(ConfigError, match="needs argument.*num_classes"):
        create_model("spectral_mlp", in_bands=3)


def test_registration_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))

    with pytest.raises(TypeError, match="named arguments only"):

        @register_model("test_varargs", task="classification")
        class VarArgs(nn.Module):
            def __init__(self, *sizes: int) -> None:
                super().__init__()

    with pytest.raises(ValueError, match="already registered"):

        @register_model("spectral_mlp", task="classification")
        class Impostor(nn.Module):
            def __init__(self, in_bands: int) -> None:
                super().__init__()

    @register_model("test_parent", task="classification")
    class Parent(nn.Module):
        def __init__(self, width: int = 2) -> None:
            super().__init__()
            self.layer = nn.Linear(width, width)

    @register_model("test_child", task="classification")
    class Child(Parent):
        def __init__(self, width: int = 3, extra: bool = True) -> None:
            super().__init__(width)

    # a registered subclass is recorded under its own name, not its parent's
    assert model_spec(Child()) == ("test_child", {"width": 3, "extra": True})
    assert model_spec(Parent()) == ("test_parent", {"width": 2})


def test_unregistered_or_non_json_models_cannot_be_described() -> None:
    with pytest.raises(ConfigError, match="not a registered model"):
        model_spec(nn.Linear(2, 2))
    model = create_model("spectral_mlp", in_bands=3, num_classes=2, dropout=float("nan"))
    with pytest.raises(ConfigError, match="finite number"):
        model_spec(model)


def test_spectral_mlp_classifies_tiles_pixel_by_pixel() -> None:
    torch.manual_seed(0)
    model = create_model("spectral_mlp", in_bands=5, num_classes=4, hidden_sizes=[7]).eval()
    tiles = torch.randn(2, 5, 3, 4)
    logits = model(tiles)
    assert logits.shape == (2, 4, 3, 4)
    pixel = tiles[1, :, 2, 1].unsqueeze(0)
    torch.testing.assert_close(logits[1, :, 2, 1], model(pixel)[0])
