#!/usr/bin/env python
"""Grow a trained camera DiT to more blocks, computing the same function, as a checkpoint to train on.

    python scripts/grow_camera_dit.py SRC OUT --depth 8 [--seed 0]
    genesis-drive train camera-dit ... --init-from OUT --set model.depth=8 ...

SRC: a camera-dit run or checkpoint directory (EMA weights when present). OUT gets the grown
weights and SRC's config with ``model.depth`` changed (:func:`genesis_drive.models.camera.dit.grow_depth`:
the trained blocks keep their places, the new ones follow them with zeroed residual outputs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genesis_drive.models.camera.dit import MultiViewDiT, grow_depth
from genesis_drive.train.checkpoint import export_checkpoint, load_run_model
from genesis_drive.train.tasks.camera_dit import CameraDiTConfig


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="camera-dit run directory (its latest checkpoint) or checkpoint directory")
    p.add_argument("out", type=Path, help="checkpoint directory to write (replaced whole if it exists)")
    p.add_argument("--depth", type=int, required=True, help="blocks of the grown DiT (more than the trained ones)")
    p.add_argument("--seed", type=int, default=0, help="seed of the new blocks' initialisation")
    a = p.parse_args()
    _, cfg, _ = load_run_model(a.source, CameraDiTConfig, lambda c: MultiViewDiT(c.model), task="camera-dit")
    export_checkpoint(a.source, a.out, config_updates={"model": {"depth": a.depth}},
                      transform=lambda w: grow_depth(w, cfg.model, a.depth, seed=a.seed))
    print(f"wrote {a.out}: camera DiT of depth {cfg.model.depth} grown to {a.depth}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
