"""The task registry: short names (``"classification"``) → :class:`~hsikit.tasks.base.BaseTask` subclasses.

A task registers itself with :func:`register_task`; built-in tasks are imported on
the first look-up. The name is also the ``task`` written to a model's ``config.json``.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from hsikit.errors import UnknownNameError

if TYPE_CHECKING:
    from hsikit.tasks.base import BaseTask

TaskType = TypeVar("TaskType", bound="type[BaseTask]")

_BUILTIN_MODULES = (
    "classification",
    "reconstruction",
    "gan_reconstruction",
    "segmentation",
    "clustering",
    "autoencoder",
)
_TASKS: dict[str, type] = {}
_builtins_loaded = False


def register_task(name: str) -> Callable[[TaskType], TaskType]:
    """Class decorator: register a task class under ``name`` (also sets ``cls.task_name``)."""

    def decorate(cls: TaskType) -> TaskType:
        existing = _TASKS.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"task name {name!r} is already registered by {existing.__qualname__}")
        cls.task_name = name
        _TASKS[name] = cls
        return cls

    return decorate


def _load_builtin_tasks() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for module in _BUILTIN_MODULES:
        module_name = f"hsikit.tasks.{module}"
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name)


def get_task(name: str) -> type[BaseTask]:
    """The task class registered as ``name``; :class:`UnknownNameError` lists the known ones."""
    _load_builtin_tasks()
    task = _TASKS.get(name)
    if task is None:
        known = sorted(_TASKS)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(f"unknown task {name!r}.{hint} Registered tasks: {', '.join(known) or '(none)'}")
    return task


def list_tasks() -> list[str]:
    """Sorted names of the registered tasks."""
    _load_builtin_tasks()
    return sorted(_TASKS)
