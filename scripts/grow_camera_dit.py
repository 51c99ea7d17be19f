#!/usr/bin/env python
"""Grow a trained camera DiT (more blocks, a layout hint encoder), computing the same function, as a checkpoint to train on.

    python scripts/grow_camera_dit.py SRC OUT [--depth 8] [--layout-hint 64] [--seed 0]
    genesis-drive train camera-dit ... --init-from OUT --set model.depth=8 model.layout_hint=64 ...

SRC: a camera-dit run or checkpoint directory (EMA weights when present). OUT gets the grown
weights and SRC's config with ``model.depth`` / ``model.layout_hint`` changed
(:func:`genesis_drive.models.camera.dit.grow_depth`: the trained blocks keep their places, the new
ones follow them with zeroed residual outputs; :func:`~genesis_drive.models.camera.dit.add_layout_hint`:
a pixel-space layout encoder with a zeroed output).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from genesis_drive.models.camera.dit import MultiViewDiT, add_layout_hint, grow_depth
from genesis_drive.train.checkpoint import export_checkpoint, load_run_model
from genesis_drive.train.tasks.camera_dit import CameraDiTConfig


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path, help="camera-dit run directory (its latest checkpoint) or checkpoint directory")
    p.add_argument("out", type=Path, help="checkpoint directory to write (replaced whole if it exists)")
    p.add_argument("--depth", type=int, default=None, help="blocks of the grown DiT (more than the trained ones)")
    p.add_argument("--layout-hint", type=int, default=None, help="channels of a layout hint encoder to add")
    p.add_argument("--seed", type=int, default=0, help="seed of the new parts' initialisation")
    a = p.parse_args()
    if a.depth is None and a.layout_hint is None:
        p.error("give --depth, --layout-hint or both")
    _, cfg, _ = load_run_model(a.source, CameraDiTConfig, lambda c: MultiViewDiT(c.model), task="camera-dit")
    model, updates, steps = cfg.model, {}, []
    if a.depth is not None:
        updates["depth"] = a.depth
        steps.append(lambda w, m=model: grow_depth(w, m, a.depth, seed=a.seed))
        model = replace(model, depth=a.depth)
    if a.layout_hint is not None:
        updates["layout_hint"] = a.layout_hint
        steps.append(lambda w, m=model: add_layout_hint(w, m, a.layout_hint, seed=a.seed))

    def transform(weights):
        for step in steps:
            weights = step(weights)
        return weights

    export_checkpoint(a.source, a.out, config_updates={"model": updates}, transform=transform)
    print(f"wrote {a.out}: camera DiT of depth {cfg.model.depth} with {updates}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
