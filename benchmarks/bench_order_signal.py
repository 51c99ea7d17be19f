"""How much direction-of-time signal SynthTown clips carry, and how much of it the FD_synth network reads.

    python benchmarks/bench_order_signal.py --root HELDOUT_ROOT [--model DIR] [--probe 64x36:2 128x72:2 64x36:4]

Issue 9 asks the FD_synth order head to detect reversed clips > 90 % of the time on held-out clips.
This script separates the two reasons it may not:

* **The data.** A clip whose ego does not move (speed below ``--moving`` m/s over the clip) shows
  the same scene forwards and backwards, up to the other agents' motion: no pixel-motion cue can
  tell its direction. The fraction of such clips bounds any motion-based detector.
* **A hand-made cue.** For the front and back cameras, driving forwards expands the front view
  and contracts the back view. ``E = mean over pixels and consecutive pairs of -d (gx x + gy y)``
  (temporal difference ``d``, spatial gradients ``gx, gy`` of the pair's mean grey image, pixel
  coordinates ``x, y`` in [-1, 1] from the image centre) is the radial normal flow: positive for
  expansion. The cue "front E - back E > 0 means in order" is scored on moving clips for each
  ``WxH:stride`` probe (images resized as the task resizes them, frames ``stride`` camera frames
  apart).
* **The network.** The shipped (or ``--model``) ``synth_features`` network's order head on every
  view clip of the root, as recorded and reversed, split by moving / stationary clips; and on the
  multi-view clip (its multi-view order head, ``model.joint_order > 0``, or without one the sum
  over its views of the per-view log-probabilities); and per scene.

Prints a markdown table; ``--json`` writes the numbers.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genesis_drive.data.atomic import atomic_write_json
from genesis_drive.data.schema import clip_scene
from genesis_drive.eval.shipped import shipped_evaluator
from genesis_drive.eval.synth_features import load_synth_net
from genesis_drive.models.blocks import to_model_input
from genesis_drive.train.tasks.synth_features import SYNTH_FEATURES_TASK, SynthFeaturesConfig


def dataset(cfg: SynthFeaturesConfig, root: Path, size: tuple[int, int] | None = None, stride: int | None = None):
    """Every clip of ``root`` as the task cuts it, at ``size`` (w, h) and ``stride``."""
    model = cfg.model if size is None else replace(cfg.model, image_size=size)
    clips = cfg.clips if stride is None else replace(cfg.clips, frame_stride=stride)
    task = SYNTH_FEATURES_TASK.build(replace(cfg, model=model, clips=clips, cache_samples=False), root)
    return task.train_dataset(), list(cfg.model.views)


def symmetric_logits(logits: torch.Tensor) -> torch.Tensor:
    """Order logits ``(v, 2, k)`` of each view read as recorded (``[:, 0]``) and reversed (``[:, 1]``)
    -> the same read time-symmetrically: each reading's logits plus the other reading's with the
    in-order and reversed answers swapped (the reversal of a shuffled clip is shuffled), so a bias
    of the head that does not depend on the direction of time cancels."""
    swap = torch.arange(logits.shape[-1])
    swap[0], swap[1] = 1, 0
    return logits + logits.flip(1)[..., swap]


def radial_flow(frames: torch.Tensor) -> float:
    """``E`` of the module doc for one view's frames ``(t, c, h, w)`` in [-1, 1]."""
    t, _, h, w = frames.shape
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    total = 0.0
    for k in range(t - 1):
        a, b = frames[k].mean(0), frames[k + 1].mean(0)
        d, m = b - a, (a + b) / 2
        gx = F.pad(m[:, 2:] - m[:, :-2], (1, 1)) / 2
        gy = F.pad(m[2:, :] - m[:-2, :], (0, 0, 1, 1)) / 2
        total += float((-d * (gx * xs + gy * ys)).mean())
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=None, help="synth_features run or checkpoint (default: the shipped one)")
    ap.add_argument("--probe", nargs="+", default=["64x36:2", "128x72:2", "64x36:4"], help="WxH:stride of the hand-made cue")
    ap.add_argument("--moving", type=float, default=1.0, help="m/s: a clip is moving above this mean ego speed")
    ap.add_argument("--no-probes", action="store_true", help="only the network (skip the hand-made cue)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = a.model or shipped_evaluator("synth_features")
    net, cfg, info = load_synth_net(model)
    res: dict = {"root": str(a.root), "model": str(model), "step": info.get("step"), "moving_m_s": a.moving,
                 "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "probes": {}}  # fmt: skip

    # the network, at its own clip spec
    ds, views = dataset(cfg, a.root)
    speeds, correct, joint, scenes = [], [], [], []  # per clip; per clip x view x (in order, reversed); per clip x (in order, reversed)
    sym_correct, sym_joint = [], []  # the same, decided time-symmetrically (symmetric_logits)
    for i in range(len(ds)):
        s = ds[i]
        scenes.append(clip_scene(s["clip_id"]))
        speeds.append(float(s["motion"][0]) * cfg.speed_scale)
        x = to_model_input(s["images"])  # v t c h w
        with torch.no_grad():
            logits = torch.stack([net.order_logits(x), net.order_logits(x.flip(1))], dim=1)  # v 2 k
            # the multi-view clip: its order head, or without one the sum of the views' log-probabilities
            mv = net.multiview_order_logits(torch.stack([x, x.flip(1)]))  # 2 k
        correct.append((logits.argmax(2) == torch.tensor([0, 1])).numpy())
        joint.append((mv.argmax(1) == torch.tensor([0, 1])).numpy())
        sym = symmetric_logits(logits.float())
        sym_correct.append((sym.argmax(2) == torch.tensor([0, 1])).numpy())
        sym_joint.append((sym.log_softmax(2).sum(0).argmax(1) == torch.tensor([0, 1])).numpy())
    speeds, correct, joint = np.abs(np.array(speeds)), np.stack(correct), np.stack(joint)  # (n,), (n, v, 2), (n, 2)
    sym_correct, sym_joint = np.stack(sym_correct), np.stack(sym_joint)
    moving = speeds > a.moving
    res.update(clips=len(speeds), moving_clips=int(moving.sum()), median_speed_m_s=float(np.median(speeds)))
    res["network"] = {name: {"clips": int(sel.sum()), "in_order": float(correct[sel, :, 0].mean()) if sel.any() else None,
                             "reversed": float(correct[sel, :, 1].mean()) if sel.any() else None,
                             "multiview_in_order": float(joint[sel, 0].mean()) if sel.any() else None,
                             "multiview_reversed": float(joint[sel, 1].mean()) if sel.any() else None,
                             "symmetric": float(sym_correct[sel].mean()) if sel.any() else None,
                             "symmetric_multiview_vote": float(sym_joint[sel].mean()) if sel.any() else None}
                      for name, sel in (("moving", moving), ("stationary", ~moving), ("all", np.ones_like(moving)))}  # fmt: skip
    scenes = np.array(scenes)
    res["scenes"] = {name: {"clips": int(sel.sum()), "moving_clips": int(moving[sel].sum()),
                            "median_speed_m_s": float(np.median(speeds[sel])),
                            "in_order": float(correct[sel, :, 0].mean()), "reversed": float(correct[sel, :, 1].mean()),
                            "multiview_in_order": float(joint[sel, 0].mean()), "multiview_reversed": float(joint[sel, 1].mean()),
                            "symmetric": float(sym_correct[sel].mean()), "symmetric_multiview_vote": float(sym_joint[sel].mean()),
                            "per_view": {ch: [float(correct[sel, j, 0].mean()), float(correct[sel, j, 1].mean())]
                                         for j, ch in enumerate(views)}}
                     for name in sorted(set(scenes)) for sel in [scenes == name]}  # fmt: skip

    # the hand-made cue at each probe size and stride
    fi, bi = views.index("CAM_FRONT"), views.index("CAM_BACK")
    for probe in [] if a.no_probes else a.probe:
        size_s, stride_s = probe.split(":")
        w, h = (int(v) for v in size_s.split("x"))
        pds, _ = dataset(cfg, a.root, (w, h), int(stride_s))
        rows, pscenes = [], []
        for i in range(len(pds)):
            s = pds[i]
            x = to_model_input(s["images"])
            rows.append((radial_flow(x[fi]) - radial_flow(x[bi]), abs(float(s["motion"][0]) * cfg.speed_scale)))
            pscenes.append(clip_scene(s["clip_id"]))
        r, pscenes = np.array(rows), np.array(pscenes)
        mv = r[:, 1] > a.moving
        res["probes"][probe] = {"clips": len(r), "moving": int(mv.sum()), "cue_accuracy_moving": float((r[mv, 0] > 0).mean()),
                                "per_scene": {name: float((r[sel & mv, 0] > 0).mean()) if (sel & mv).any() else None
                                              for name in sorted(set(scenes)) for sel in [pscenes == name]}}  # fmt: skip

    print(f"# order signal in {a.root}: {res['clips']} clips, {res['moving_clips']} moving (> {a.moving} m/s), "
          f"median speed {res['median_speed_m_s']:.1f} m/s; network {model} (step {res['step']})")
    print("| clips | n | network, per view: in order / reversed detected | network, multi-view clip: in order / reversed "
          "| time-symmetric: per view / multi-view vote |")
    print("|---|---|---|---|---|")
    for name, v in res["network"].items():
        if v["clips"]:
            print(f"| {name} | {v['clips']} | {v['in_order']:.3f} / {v['reversed']:.3f} "
                  f"| {v['multiview_in_order']:.3f} / {v['multiview_reversed']:.3f} | {v['symmetric']:.3f} / {v['symmetric_multiview_vote']:.3f} |")
    print("\n| scene | clips (moving) | median speed m/s | per view: in order / reversed | multi-view: in order / reversed "
          "| time-symmetric: per view / multi-view vote |")
    print("|---|---|---|---|---|---|")
    for name, v in res["scenes"].items():
        print(f"| {name} | {v['clips']} ({v['moving_clips']}) | {v['median_speed_m_s']:.1f} | {v['in_order']:.3f} / {v['reversed']:.3f} "
              f"| {v['multiview_in_order']:.3f} / {v['multiview_reversed']:.3f} | {v['symmetric']:.3f} / {v['symmetric_multiview_vote']:.3f} |")
    print("\n| scene, per view: in order / reversed | " + " | ".join(views) + " |")
    print("|---|" + "---|" * len(views))
    for name, v in res["scenes"].items():
        print(f"| {name} | " + " | ".join(f"{io:.2f} / {rv:.2f}" for io, rv in v["per_view"].values()) + " |")
    names = list(res["scenes"])
    print("\n| hand-made cue (front expansion - back expansion > 0), probe WxH:stride | moving clips | accuracy | "
          + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for probe, v in res["probes"].items():
        per = " | ".join("-" if v["per_scene"][n] is None else f"{v['per_scene'][n]:.2f}" for n in names)
        print(f"| {probe} | {v['moving']} | {v['cue_accuracy_moving']:.3f} | {per} |")
    if a.json:
        atomic_write_json(a.json, res, indent=1)


if __name__ == "__main__":
    main()
