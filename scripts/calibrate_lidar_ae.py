#!/usr/bin/env python
"""Calibrate a trained LiDAR AE's latent scale: write its EMA weights with measured
``model.shift_factor`` / ``model.scaling_factor`` as a checkpoint directory for a LiDAR DiT.

    python scripts/calibrate_lidar_ae.py AE_RUN --data ROOT --out DIR [--sweeps 64] [--tune-sweeps 16]

See :func:`genesis_drive.train.tasks.lidar_ae.calibrate_latents` and docs/lidar.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from genesis_drive.errors import GenesisError
from genesis_drive.train.tasks.lidar_ae import calibrate_latents


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="lidar-ae run directory (its latest checkpoint) or a checkpoint directory")
    p.add_argument("--data", required=True, type=Path, help="the root the AE was trained on (its training scenes are used)")
    p.add_argument("--out", required=True, type=Path, help="checkpoint directory to write (replaced whole if it exists)")
    p.add_argument("--sweeps", type=int, default=64, help="sweeps to measure, evenly spread (default 64)")
    p.add_argument("--tune-sweeps", type=int, default=16,
                   help="training sweeps the drop threshold is chosen on (default 16; 0 keeps the model's)")
    a = p.parse_args()
    try:
        stats = calibrate_latents(a.run, a.data, a.out, sweeps=a.sweeps, tune_sweeps=a.tune_sweeps)
    except GenesisError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(stats, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
