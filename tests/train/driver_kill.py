"""Train through the CLI, but freeze forever in the middle of writing one checkpoint (to be SIGKILLed).

Usage: python driver_kill.py MARKER STEP <genesis-drive train arguments...>
When checkpoint STEP has written model.safetensors into its temporary directory, MARKER is
created and the process sleeps: the test then kills it with SIGKILL.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from driver_cli import main

from genesis_drive.train import checkpoint


def freeze_during(marker: Path, step: int) -> None:
    original = checkpoint._write_tensors

    def write_then_freeze(path: Path, tensors):
        original(path, tensors)
        if path.parent.name.startswith(f".tmp-step_{step:08d}") and path.name == "model.safetensors":
            marker.write_text("frozen mid-checkpoint")
            time.sleep(600)

    checkpoint._write_tensors = write_then_freeze


if __name__ == "__main__":
    freeze_during(Path(sys.argv[1]), int(sys.argv[2]))
    sys.exit(main(sys.argv[3:]))
