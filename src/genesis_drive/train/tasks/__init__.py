"""Training tasks by name: the one explicit table the CLI looks task names up in."""

from __future__ import annotations

from ..task import TaskDef
from . import frame_ae

__all__ = ["TASKS"]

#: task name -> definition (config type, presets, builder). Add new tasks here.
TASKS: dict[str, TaskDef] = {
    "frame_ae": frame_ae.TASK,
}
