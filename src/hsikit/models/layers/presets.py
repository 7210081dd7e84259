"""Register one architecture under several size presets (``<family>_tiny``, ``<family>_base``...).

The registry maps one name to one class and records the constructor arguments of every
instance, so each preset is a small subclass whose constructor has the *same* arguments as
the architecture, with the preset's values as defaults. ``create_model("sharp_base")``
then builds the base size, ``create_model("sharp_base", depths=[2, 2, 2, 2])`` overrides
a value, and ``model_spec`` writes every argument to JSON as for any registered model.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch.nn as nn

from hsikit.models.registry import register_model


def _preset_init(base_class: type[nn.Module], signature: inspect.Signature) -> Callable[..., None]:
    def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        del arguments["self"]
        base_class.__init__(self, **arguments)

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    return __init__


def register_presets(
    base_class: type[nn.Module],
    family: str,
    presets: Mapping[str, Mapping[str, Any]],
    *,
    task: str,
    test_configuration: Mapping[str, Any],
    module_name: str,
) -> dict[str, type[nn.Module]]:
    """Create and register one subclass of ``base_class`` per preset.

    Args:
        base_class: the architecture (its constructor takes named arguments only).
        family: registry prefix: preset ``"tiny"`` is registered as ``f"{family}_tiny"``.
        presets: size name → argument defaults that differ from ``base_class``'s.
        task: registry task of every preset.
        test_configuration: the registry's ``tiny`` arguments (a small configuration for tests).
        module_name: ``__name__`` of the module that binds the classes (for pickling and repr);
            that module must bind each class to a global named like the class
            (``<BaseClass><Size>``, e.g. ``SHARPTiny``).

    Returns:
        size name → registered class.
    """
    base_signature = inspect.signature(base_class.__init__)
    known = set(base_signature.parameters)
    classes: dict[str, type[nn.Module]] = {}
    for size, overrides in presets.items():
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"preset {family}_{size} sets unknown argument(s) {unknown} of {base_class.__name__}")
        parameters = [
            parameter.replace(default=overrides[parameter.name]) if parameter.name in overrides else parameter
            for parameter in base_signature.parameters.values()
        ]
        signature = base_signature.replace(parameters=parameters)
        class_name = f"{base_class.__name__}{size.capitalize()}"
        settings = ", ".join(f"{key}={value!r}" for key, value in overrides.items())
        namespace = {
            "__init__": _preset_init(base_class, signature),
            "__doc__": (
                f"{base_class.__name__} at its {size!r} size ({settings}); registry name ``{family}_{size}``.\n\n"
                f"Every argument of :class:`{base_class.__name__}` can be overridden; see its docstring."
            ),
            "__module__": module_name,
            "__qualname__": class_name,
        }
        preset_class = type(class_name, (base_class,), namespace)
        classes[size] = register_model(f"{family}_{size}", task=task, tiny=dict(test_configuration))(preset_class)
    return classes


__all__ = ["register_presets"]
