#!/usr/bin/env python
"""Ship a trained evaluator run as package weights: ``src/genesis_drive/assets/evaluators/NAME/``.

    python scripts/ship_evaluator.py RUN_DIR NAME --command "genesis-drive train ..." \
        --data-command "genesis-drive world ..." [--version NAME-tiny-v1] [--wall-time-s 190]

Writes the EMA weights + state.json atomically and records version, sha256, command, steps, wall
time and date in ``MANIFEST.json`` (see :mod:`genesis_drive.eval.shipped`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genesis_drive.eval.shipped import ASSETS_DIR, write_shipped


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path, help="training run directory (its latest checkpoint) or a checkpoint directory")
    p.add_argument("name", help="evaluator name (synth_features, bev_layout, depth, layout2d)")
    p.add_argument("--command", required=True, help="exact training command that reproduces the run")
    p.add_argument("--data-command", required=True, help="exact 'genesis-drive world' command of its training data")
    p.add_argument("--version", default=None, help="version string (default NAME-tiny-v1)")
    p.add_argument("--wall-time-s", type=float, default=None, help="training wall time, seconds")
    p.add_argument("--assets-dir", type=Path, default=ASSETS_DIR)
    a = p.parse_args()
    entry = write_shipped(a.run_dir, a.name, version=a.version or f"{a.name}-tiny-v1", command=a.command,
                          data_command=a.data_command, wall_time_s=a.wall_time_s, assets_dir=a.assets_dir)
    print(json.dumps({a.name: entry}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
