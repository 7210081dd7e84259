"""The model registry: names → pure-torch ``nn.Module`` classes.

Every architecture registers itself under a name with :func:`register_model`::

    @register_model("spectral_mlp", task="classification", tiny={"hidden_sizes": [16]})
    class SpectralMLP(nn.Module):
        def __init__(self, in_bands: int, num_classes: int, hidden_sizes: Sequence[int] = (256, 128)): ...

and is built with :func:`create_model` (``create_model("spectral_mlp", in_bands=200, num_classes=16)``).

Registration wraps the class's ``__init__`` so that every instance remembers its
registry name and the full set of constructor arguments it was built with (given
values and defaults). :func:`model_spec` returns them as JSON, which is what a model
file's ``config.json`` stores: a model is rebuilt from ``(name, arguments)`` only,
never from an import path written in a file. The constructor must therefore take
named arguments only (no ``*args`` / ``**kwargs``), with JSON-friendly values.

Built-in architectures live in the sub-packages ``hsikit.models.spectral``,
``.reconstruction``, ``.segmentation`` and ``.clustering``; they are imported on the
first registry look-up, so a name is found without importing its file first.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import inspect
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch.nn as nn

from hsikit.errors import ConfigError, UnknownNameError

ModuleType = TypeVar("ModuleType", bound=type[nn.Module])

_BUILTIN_PACKAGES = ("spectral", "reconstruction", "segmentation", "clustering")
_SPEC_ATTRIBUTE = "_hsikit_model_spec"


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture.

    Attributes:
        name: registry name (``"spectral_mlp"``).
        cls: the ``nn.Module`` subclass.
        task: the task family it serves (``"classification"``, ``"reconstruction"``...).
        tiny: constructor arguments of a small configuration for tests (merged over the defaults).
    """

    name: str
    cls: type[nn.Module]
    task: str
    tiny: Mapping[str, Any] = field(default_factory=dict)

    @property
    def signature(self) -> inspect.Signature:
        """The constructor signature without ``self``."""
        return _constructor_signature(self.cls)

    def parameter_names(self) -> list[str]:
        """Names of the constructor arguments, in order."""
        return list(self.signature.parameters)

    def required_parameters(self) -> list[str]:
        """Constructor arguments without a default."""
        return [name for name, p in self.signature.parameters.items() if p.default is inspect.Parameter.empty]


_MODELS: dict[str, ModelEntry] = {}
_builtins_loaded = False


def register_model(
    name: str, *, task: str, tiny: Mapping[str, Any] | None = None
) -> Callable[[ModuleType], ModuleType]:
    """Class decorator: register an ``nn.Module`` under ``name`` for ``task``.

    The constructor must take named arguments only; each instance then carries its
    arguments (see :func:`model_spec`). Registering a second class under a taken
    name raises ``ValueError`` (a programming error, not user input).
    """
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"model name {name!r} must be a non-empty identifier (letters, digits, '_' or '-')")

    def decorate(cls: ModuleType) -> ModuleType:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"register_model({name!r}) decorates nn.Module subclasses, got {cls!r}")
        existing = _MODELS.get(name)
        if existing is not None and existing.cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"model name {name!r} is already registered by {existing.cls.__qualname__}")
        signature = _constructor_signature(cls)
        for parameter in signature.parameters.values():
            if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise TypeError(
                    f"{cls.__qualname__}.__init__ takes *{parameter.name}; registered models need named "
                    "arguments only, so that their configuration can be written to and rebuilt from JSON"
                )
        original_init = cls.__init__

        @functools.wraps(original_init)
        def recording_init(self: nn.Module, *args: Any, **kwargs: Any) -> None:
            original_init(self, *args, **kwargs)
            # Only the class that was instantiated records: a registered subclass calling
            # super().__init__() must not be recorded under its parent's name.
            if type(self) is cls:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                object.__setattr__(self, _SPEC_ATTRIBUTE, (name, dict(bound.arguments)))

        cls.__init__ = recording_init  # type: ignore[method-assign]
        cls.registry_name = name  # type: ignore[attr-defined]
        _MODELS[name] = ModelEntry(name=name, cls=cls, task=task, tiny=dict(tiny or {}))
        return cls

    return decorate


def _constructor_signature(cls: type) -> inspect.Signature:
    signature = inspect.signature(cls.__init__)
    parameters = list(signature.parameters.values())[1:]  # drop self
    return signature.replace(parameters=parameters)


def _load_builtin_models() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for package in _BUILTIN_PACKAGES:
        module_name = f"hsikit.models.{package}"
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name)


def get_model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; :class:`UnknownNameError` lists the known names."""
    _load_builtin_models()
    entry = _MODELS.get(name)
    if entry is None:
        known = sorted(_MODELS)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(
            f"unknown model {name!r}.{hint} Registered models: {', '.join(known) or '(none)'}. "
            "Models from a plugin are registered when the plugin package is imported."
        )
    return entry


def list_models(task: str | None = None) -> list[str]:
    """Sorted registry names, optionally only those serving ``task``."""
    _load_builtin_models()
    return sorted(name for name, entry in _MODELS.items() if task is None or entry.task == task)


def check_model_arguments(name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``arguments`` against the constructor of model ``name``.

    Returns the arguments as a plain dict. Raises :class:`ConfigError` naming the
    unknown or missing arguments and listing the accepted ones.
    """
    entry = get_model_entry(name)
    accepted = entry.parameter_names()
    unknown = sorted(set(arguments) - set(accepted))
    if unknown:
        raise ConfigError(
            f"model {name!r} has no argument(s) {', '.join(unknown)}; it accepts: {', '.join(accepted)}"
        )
    missing = [p for p in entry.required_parameters() if p not in arguments]
    if missing:
        raise ConfigError(
            f"model {name!r} needs argument(s) {', '.join(missing)}; pass them in model_args "
            "(a task fills in_bands / num_classes from its datamodule)"
        )
    return dict(arguments)


def create_model(name: str, **arguments: Any) -> nn.Module:
    """Build the registered model ``name`` with keyword ``arguments``.

    Example:
        >>> model = create_model("spectral_mlp", in_bands=200, num_classes=16)
    """
    entry = get_model_entry(name)
    check_model_arguments(name, arguments)
    return entry.cls(**arguments)


def tiny_model_arguments(name: str) -> dict[str, Any]:
    """The arguments of the small test configuration of ``name`` (without data-dependent ones)."""
    return dict(get_model_entry(name).tiny)


def model_spec(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """``(registry name, constructor arguments as JSON-compatible values)`` of a registered model.

    Tuples become lists and numpy scalars Python numbers, exactly as JSON will
    round-trip them. Raises :class:`ConfigError` for an unregistered model or an
    argument JSON cannot hold.
    """
    spec = getattr(model, _SPEC_ATTRIBUTE, None)
    if spec is None:
        raise ConfigError(
            f"{type(model).__qualname__} is not a registered model (or was not built through its registered "
            "constructor); decorate it with hsikit.models.register_model so it can be exported"
        )
    name, arguments = spec
    return name, {key: to_json_value(value, f"{name}.{key}") for key, value in arguments.items()}


def to_json_value(value: Any, where: str = "value") -> Any:
    """``value`` as plain JSON types (dict/list/str/int/float/bool/None); ConfigError otherwise."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where} = {value!r} cannot be stored in JSON; use a finite number")
        return float(value)
    if hasattr(value, "tolist") and hasattr(value, "ndim"):  # numpy / torch scalars and arrays
        return to_json_value(value.tolist(), where)
    if isinstance(value, (list, tuple)):
        return [to_json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise ConfigError(f"{where}: JSON objects need string keys, got {list(value)!r}")
        return {key: to_json_value(item, f"{where}.{key}") for key, item in value.items()}
    raise ConfigError(
        f"{where} = {value!r} ({type(value).__name__}) cannot be stored in a model's config.json; "
        "registered models take JSON-friendly arguments (numbers, strings, lists, dicts)"
    )


def arguments_equal(first: Mapping[str, Any], second: Mapping[str, Any]) -> bool:
    """Whether two argument mappings are equal once written as JSON (tuples == lists)."""
    return json.dumps(to_json_value(dict(first)), sort_keys=True) == json.dumps(
        to_json_value(dict(second)), sort_keys=True
    )
