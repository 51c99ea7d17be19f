"""Layout faithfulness 2D: per-camera semantic segmentation of generated frames against the
SynthTown ground truth of the same samples (``genesis-drive eval layout2d``).

Protocol. Every keyframe camera image of the generated root (``--gen``) is matched to the
reference root (``--ref``, a SynthTown root with camera buffers) by sample token and channel;
every reference keyframe of an evaluated scene must have its generated image. The evaluator
(task ``layout2d``, :class:`~genesis_drive.models.evaluators.layout2d.Layout2DNet`) segments the
generated image (resized to its input size as ``resize_crop`` does); the truth is the reference
buffer's class map (:func:`~genesis_drive.train.tasks.layout2d.read_class_map`) taken to the
prediction size by nearest neighbour (:func:`~genesis_drive.train.tasks.layout2d.resize_crop_labels`).
Per-class IoU = summed intersections / summed unions over all evaluated images; mIoU averages
the six layout classes (:data:`SCORED_CLASSES`; ``other`` is never scored; a class with no union
in a draw is left out of that draw's mean). Intervals: percentile bootstrap over whole scenes.

Beside the generated score the report gives the same metric on

* **real**: the reference images against their own buffers (the evaluator's ceiling; reference
  images keep their injected sensor faults), and
* **control (layout ignored)**: each reference keyframe ``k`` of a scene with ``n`` keyframes is
  scored with the reference image of the same camera at keyframe ``(k + n // 2) mod n``: real
  pictures of the right place at the wrong moment, what a generator that ignores its layout
  would at best produce. Scenes with one keyframe have no control.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..data.atomic import atomic_write_json, atomic_write_text
from ..data.nuscenes import NuScenesReader, read_image
from ..data.schema import CAMERA_CHANNELS
from ..errors import ConfigError, DataError
from ..models.evaluators.layout2d import LAYOUT2D_CLASSES, LAYOUT2D_PALETTE, SCORED_CLASSES, Layout2DNet
from ..train.checkpoint import load_run_model
from ..train.tasks.layout2d import (
    KeyframeCamera,
    Layout2DConfig,
    confusion_matrix,
    iou_from_confusion,
    keyframe_cameras,
    mean_iou,
    preview_grid,
    read_class_map,
    resize_crop_labels,
)
from .bootstrap import BootstrapCI, bootstrap_ci
from .report import MetricRow, format_number

__all__ = [
    "PROTOCOL_VERSION",
    "Layout2DResult",
    "LayoutScores",
    "control_partner",
    "evaluate_layout2d",
    "load_layout2d_model",
    "match_keyframes",
    "register_layout2d",
    "run_layout2d",
    "samples_picture",
    "score_confusions",
    "write_layout2d_report",
]

#: Version of this protocol (classes, material mapping, IoU pooling, control); bump when any changes.
PROTOCOL_VERSION = "layout2d-1"
_ASPECT_TOLERANCE = 0.01


def load_layout2d_model(path: str | Path, *, ema: bool = True) -> tuple[Layout2DNet, Layout2DConfig, dict]:
    """The trained evaluator (eval mode, CPU), its run config and checkpoint info (path, step, sha256)."""
    return load_run_model(path, Layout2DConfig, lambda c: Layout2DNet(c.model), task="layout2d", ema=ema)


# ----------------------------------------------------------------------------- matching


def match_keyframes(
    gen: NuScenesReader, ref: NuScenesReader, views: Sequence[str] = CAMERA_CHANNELS, scenes: Sequence[str] | None = None
) -> list[tuple[KeyframeCamera, KeyframeCamera]]:
    """``(generated, reference)`` keyframe images of the evaluated scenes, in reference order.

    Matched by sample token and channel. Evaluated scenes: ``scenes`` (reference scene names), else
    every reference scene the generated root has samples of. DataError when a generated sample is
    not in the reference, when the generated root lacks a reference keyframe image of an evaluated
    scene, or when a reference buffer is missing.
    """
    ref_cams = keyframe_cameras(ref, views)
    gen_cams = keyframe_cameras(gen, views)
    by_key = {(c.sample_token, c.channel): c for c in ref_cams}
    gen_by_key = {}
    for c in gen_cams:
        if (c.sample_token, c.channel) not in by_key:
            raise DataError(f"generated sample {c.sample_token} ({c.channel}, scene {c.scene}) is not a sample of the reference "
                            f"root {ref.root} (samples are matched by token)", c.image)  # fmt: skip
        gen_by_key[(c.sample_token, c.channel)] = c
    ref_scenes = {c.scene for c in ref_cams}
    if scenes is None:
        wanted = {by_key[k].scene for k in gen_by_key}
    else:
        unknown = sorted(set(scenes) - ref_scenes)
        if unknown:
            raise DataError(f"--scenes names scene(s) {unknown} that the reference root does not have", ref.root)
        wanted = set(scenes)
    if not wanted:
        raise DataError("no keyframe camera images to evaluate (empty generated root?)", gen.root)
    pairs = []
    for r in ref_cams:
        if r.scene not in wanted:
            continue
        g = gen_by_key.get((r.sample_token, r.channel))
        if g is None:
            raise DataError(f"generated root lacks sample {r.sample_token} ({r.channel}, keyframe {r.keyframe} of scene {r.scene}); "
                            "every keyframe of an evaluated scene must be generated (or pass --scenes)", gen.root)  # fmt: skip
        if not r.buffer.is_file():
            raise DataError("reference camera buffer not found (the reference must be a SynthTown root written with buffers)",
                            r.buffer)  # fmt: skip
        pairs.append((g, r))
    return pairs


def control_partner(cams: Sequence[KeyframeCamera]) -> np.ndarray:
    """For each image i, the index of the image of the same scene and camera at keyframe
    ``(k + n // 2) mod n``; -1 where the scene has one keyframe (no control)."""
    pos = {(c.scene, c.channel, c.keyframe): i for i, c in enumerate(cams)}
    out = np.full(len(cams), -1, dtype=np.int64)
    for i, c in enumerate(cams):
        if c.num_keyframes > 1:
            j = pos.get((c.scene, c.channel, (c.keyframe + c.num_keyframes // 2) % c.num_keyframes))
            if j is None:
                raise DataError(f"scene {c.scene} lacks keyframe {(c.keyframe + c.num_keyframes // 2) % c.num_keyframes} "
                                f"of {c.channel} for the control", c.buffer)  # fmt: skip
            out[i] = j
    return out


# ----------------------------------------------------------------------------- prediction


def _model_input(image: np.ndarray, image_size: tuple[int, int]) -> torch.Tensor:
    from ..data.clips import resize_crop

    small = resize_crop(image, np.eye(3), image_size)[0]
    return torch.from_numpy(np.array(small)).permute(2, 0, 1).float() / 127.5 - 1.0  # a copy: PIL arrays are read-only


def _check_aspect(image: np.ndarray, truth_shape: tuple[int, int], path: Path, buffer: Path) -> None:
    a, b = image.shape[1] / image.shape[0], truth_shape[1] / truth_shape[0]
    if abs(a - b) > _ASPECT_TOLERANCE * b:
        raise DataError(f"image {image.shape[1]}x{image.shape[0]} does not have the aspect ratio of its reference camera "
                        f"{truth_shape[1]}x{truth_shape[0]} ({buffer}); pixels could not be compared", path, "sample_data.filename")  # fmt: skip


@torch.no_grad()
def _predict(model: Layout2DNet, cams: Sequence[KeyframeCamera], truth_shapes: Sequence[tuple[int, int]], *, batch_size: int,
             device: torch.device, desc: str | None) -> np.ndarray:  # fmt: skip
    """Class predictions (n, h', w') uint8 of the images of ``cams``."""
    from tqdm import tqdm

    cfg = model.cfg
    w, h = cfg.output_size
    out = np.empty((len(cams), h, w), dtype=np.uint8)
    model = model.to(device).eval()
    for s in tqdm(range(0, len(cams), batch_size), desc=desc, disable=desc is None, leave=False):
        xs = []
        for c, shape in zip(cams[s : s + batch_size], truth_shapes[s : s + batch_size]):
            image = read_image(c.image)
            _check_aspect(image, shape, c.image, c.buffer)
            xs.append(_model_input(image, cfg.image_size))
        logits = model(torch.stack(xs).to(device))
        out[s : s + len(xs)] = logits.argmax(1).to(torch.uint8).cpu().numpy()
    return out


# ----------------------------------------------------------------------------- scores


@dataclass
class LayoutScores:
    """Pooled scores of one set of images (K = len(LAYOUT2D_CLASSES))."""

    miou: float
    miou_ci: BootstrapCI | None
    iou: dict[str, float]                   # per scored class
    iou_ci: dict[str, BootstrapCI | None]
    confusion: np.ndarray                   # (K, K) pooled, [true, predicted]
    images: int
    scenes: int

    def to_dict(self) -> dict:
        d = {"miou": self.miou, "miou_ci": self.miou_ci.to_dict() if self.miou_ci else None}
        for k, v in self.iou.items():
            d[f"iou_{k}"] = v
            d[f"iou_{k}_ci"] = self.iou_ci[k].to_dict() if self.iou_ci[k] else None
        d.update(images=self.images, scenes=self.scenes, confusion=self.confusion.tolist())
        return d


def _estimate(statistic, groups: np.ndarray, num_resamples: int, level: float, seed: int) -> tuple[float, BootstrapCI | None]:
    if num_resamples:
        ci = bootstrap_ci(statistic, len(groups), groups=groups, num_resamples=num_resamples, level=level, seed=seed)
        return ci.value, ci
    return float(statistic(np.arange(len(groups)))), None


def score_confusions(conf: np.ndarray, scenes: Sequence[str], *, num_resamples: int = 200, level: float = 0.95, seed: int = 0) -> LayoutScores:
    """Scores of per-image confusion matrices ``conf`` (n, K, K) grouped by ``scenes`` (n,) for the bootstrap."""
    conf = np.asarray(conf)
    groups = np.asarray(scenes)
    miou, miou_ci = _estimate(lambda idx: mean_iou(conf[idx].sum(0)), groups, num_resamples, level, seed)
    iou, iou_ci = {}, {}
    for k, name in enumerate(SCORED_CLASSES):
        iou[name], iou_ci[name] = _estimate(lambda idx, k=k: float(iou_from_confusion(conf[idx].sum(0))[k]), groups, num_resamples, level, seed)
    return LayoutScores(miou, miou_ci, iou, iou_ci, conf.sum(0), len(conf), len(set(scenes)))


@dataclass
class Layout2DResult:
    """Everything ``eval layout2d`` reports. ``generated`` / ``gap`` are None when gen is ref;
    ``control`` is None when no scene has two keyframes."""

    real: LayoutScores
    control: LayoutScores | None
    generated: LayoutScores | None
    gap: tuple[float, BootstrapCI | None] | None     # mIoU generated - real, scenes resampled jointly
    samples: list[tuple[torch.Tensor, np.ndarray, np.ndarray]]   # picture rows: (model input 3 h w, prediction, truth)
    pairs: list[tuple[KeyframeCamera, KeyframeCamera]]


def evaluate_layout2d(
    model: Layout2DNet,
    gen_root: str | Path,
    ref_root: str | Path,
    *,
    views: Sequence[str] = CAMERA_CHANNELS,
    scenes: Sequence[str] | None = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    num_resamples: int = 200,
    level: float = 0.95,
    seed: int = 0,
    num_pictures: int = 6,
    progress: bool = False,
) -> Layout2DResult:
    """Run the protocol of this module's docstring on two roots (``gen_root`` may be ``ref_root``)."""
    device = torch.device(device)
    ref = NuScenesReader(ref_root)
    same = Path(gen_root).resolve() == Path(ref_root).resolve()
    gen = ref if same else NuScenesReader(gen_root)
    pairs = match_keyframes(gen, ref, views, scenes)
    ref_cams = [r for _, r in pairs]
    stride, size = model.cfg.output_stride, model.cfg.image_size
    truths = []
    for r in ref_cams:
        labels = read_class_map(r.buffer)
        truths.append((labels.shape, resize_crop_labels(labels, size, stride)))
    shapes = [s for s, _ in truths]
    truth = np.stack([t for _, t in truths])
    scene_names = [r.scene for r in ref_cams]
    kw = {"batch_size": batch_size, "device": device}
    ref_pred = _predict(model, ref_cams, shapes, desc="reference keyframes" if progress else None, **kw)
    opts = {"num_resamples": num_resamples, "level": level, "seed": seed}
    real_conf = np.stack([confusion_matrix(p, t) for p, t in zip(ref_pred, truth)])
    real = score_confusions(real_conf, scene_names, **opts)
    partner = control_partner(ref_cams)
    has = np.flatnonzero(partner >= 0)
    control = None
    if len(has):
        ctrl_conf = np.stack([confusion_matrix(ref_pred[partner[i]], truth[i]) for i in has])
        control = score_confusions(ctrl_conf, [scene_names[i] for i in has], **opts)
    generated, gap = None, None
    shown_pred = ref_pred
    if not same:
        gen_pred = _predict(model, [g for g, _ in pairs], shapes, desc="generated keyframes" if progress else None, **kw)
        gen_conf = np.stack([confusion_matrix(p, t) for p, t in zip(gen_pred, truth)])
        generated = score_confusions(gen_conf, scene_names, **opts)
        gap = _estimate(lambda idx: mean_iou(gen_conf[idx].sum(0)) - mean_iou(real_conf[idx].sum(0)), np.asarray(scene_names),
                        num_resamples, level, seed)  # fmt: skip
        shown_pred = gen_pred
    picks = np.unique(np.linspace(0, len(pairs) - 1, num=min(num_pictures, len(pairs))).round().astype(int)) if num_pictures else []
    samples = []
    for i in picks:
        image = _model_input(read_image(pairs[i][0].image), size)
        samples.append((image, shown_pred[i], truth[i]))
    return Layout2DResult(real, control, generated, gap, samples, pairs)


# ----------------------------------------------------------------------------- outputs


def _rows(scores: LayoutScores, label: str) -> list[MetricRow]:
    counts = {"images": scores.images, "scenes": scores.scenes}
    rows = [MetricRow(f"mIoU ({label})", scores.miou, scores.miou_ci, counts=counts, note="bootstrap over scenes")]
    rows += [MetricRow(f"IoU {k} ({label})", v, scores.iou_ci[k], counts=counts) for k, v in scores.iou.items()]
    return rows


def _cell(value: float, ci: BootstrapCI | None) -> str:
    return format_number(value) + (f" [{format_number(ci.low)}, {format_number(ci.high)}]" if ci is not None else "")


def _markdown(result: Layout2DResult, title: str, meta: dict) -> str:
    cols = [(name, s) for name, s in (("generated", result.generated), ("real (ceiling)", result.real),
                                      ("control (layout ignored)", result.control)) if s is not None]  # fmt: skip
    level = next((s.miou_ci.level for _, s in cols if s.miou_ci is not None), None)
    ci_note = f"{level:.0%} bootstrap intervals over scenes in brackets" if level else "bootstrap off"
    lines = [f"# {title}", "", f"IoU per class (summed intersections / summed unions); {ci_note}.", "",
             "| class | " + " | ".join(n for n, _ in cols) + " |", "|---|" + "---|" * len(cols)]  # fmt: skip
    lines.append("| **mIoU** | " + " | ".join(_cell(s.miou, s.miou_ci) for _, s in cols) + " |")
    for k in SCORED_CLASSES:
        lines.append(f"| {k} | " + " | ".join(_cell(s.iou[k], s.iou_ci[k]) for _, s in cols) + " |")
    lines.append("| images (scenes) | " + " | ".join(f"{s.images} ({s.scenes})" for _, s in cols) + " |")
    lines.append("")
    if result.gap is not None:
        lines += [f"mIoU generated - real (paired, same samples): {_cell(*result.gap)}", ""]
    if result.control is not None and result.real.miou > 0:
        lines += [f"control / real mIoU: {result.control.miou / result.real.miou:.3f}", ""]
    lines += [f"- protocol: `{meta['protocol']}`", f"- evaluator: `{meta['evaluator']}`", ""]
    return "\n".join(lines)


def _legend() -> np.ndarray:
    """A white strip with one colour swatch and name per class (uint8 RGB)."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.33
    widths = [int(cv2.getTextSize(n, font, scale, 1)[0][0]) for n in LAYOUT2D_CLASSES]
    strip = np.full((18, 4 + sum(w + 24 for w in widths), 3), 255, dtype=np.uint8)
    x = 4
    for name, color, w in zip(LAYOUT2D_CLASSES, LAYOUT2D_PALETTE, widths):
        cv2.rectangle(strip, (x, 4), (x + 10, 14), tuple(int(c) for c in color), -1)
        cv2.rectangle(strip, (x, 4), (x + 10, 14), (0, 0, 0), 1)
        cv2.putText(strip, name, (x + 13, 13), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
        x += w + 24
    return strip


def samples_picture(samples: Sequence[tuple[torch.Tensor, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Rows of frame | evaluator prediction | ground truth (colour-coded) above a class legend, uint8 RGB."""
    if not samples:
        raise ValueError("no samples to draw")
    images = torch.stack([s[0] for s in samples])
    grid = preview_grid(images, torch.from_numpy(np.stack([s[1] for s in samples])), torch.from_numpy(np.stack([s[2] for s in samples])))
    legend = _legend()
    if legend.shape[1] < grid.shape[1]:
        legend = np.pad(legend, ((0, 0), (0, grid.shape[1] - legend.shape[1]), (0, 0)), constant_values=255)
    elif legend.shape[1] > grid.shape[1]:
        grid = np.pad(grid, ((0, 0), (0, legend.shape[1] - grid.shape[1]), (0, 0)), constant_values=255)
    return np.concatenate([grid, legend], axis=0)


def write_layout2d_report(out_dir: str | Path, name: str, result: Layout2DResult, meta: dict) -> tuple[Path, Path, Path]:
    """``OUT/<name>.json`` (flat keys ``miou``, ``iou_<class>``, ``*_ci``, ``real``, ``control``,
    ``generated``, ``evaluator``, ``rows``), ``OUT/<name>.md`` and ``OUT/<name>_samples.png``."""
    import datetime as _dt

    from ..viz.video import write_png

    out = Path(out_dir)
    title = "Layout faithfulness 2D (per-camera segmentation)"
    main = result.generated if result.generated is not None else result.real
    rows = []
    if result.generated is not None:
        rows += _rows(result.generated, "generated")
    rows += _rows(result.real, "real")
    if result.control is not None:
        rows += _rows(result.control, "control: layout ignored")
    if result.gap is not None:
        rows.append(MetricRow("mIoU generated - real (paired)", result.gap[0], result.gap[1], counts={"images": main.images},
                              note="same samples; scenes resampled jointly"))  # fmt: skip
    payload = {"title": title, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    flat = main.to_dict()
    flat.pop("confusion")
    payload.update(flat)
    payload["scored"] = "generated" if result.generated is not None else "real (generated root is the reference)"
    payload["real"] = result.real.to_dict()
    payload["control"] = result.control.to_dict() if result.control is not None else None
    payload["generated"] = result.generated.to_dict() if result.generated is not None else None
    payload["gap_miou"] = ({"value": result.gap[0], "ci": result.gap[1].to_dict() if result.gap[1] else None}
                           if result.gap is not None else None)  # fmt: skip
    payload["control_over_real"] = (result.control.miou / result.real.miou
                                    if result.control is not None and result.real.miou > 0 else None)  # fmt: skip
    payload["evaluator"] = meta["evaluator"]
    payload["rows"] = [r.to_dict() for r in rows]
    payload["meta"] = meta
    j = atomic_write_json(out / f"{name}.json", payload, indent=2)
    m = atomic_write_text(out / f"{name}.md", _markdown(result, title, meta))
    p = write_png(out / f"{name}_samples.png", samples_picture(result.samples))
    return j, m, p


# ----------------------------------------------------------------------------- CLI


def register_layout2d(sub) -> None:
    """Add ``layout2d`` to the ``eval`` sub-parsers."""
    from .cli import add_common_options

    p = sub.add_parser("layout2d", help="layout faithfulness 2D: per-camera segmentation IoU of generated frames vs SynthTown truth",
                       description="Segments every keyframe camera image of a generated root with the layout2d evaluator (task "
                                   "layout2d) and compares it with the SynthTown buffers of the same samples in the reference "
                                   "root: per-class IoU, mIoU over road, lane_marking, sidewalk, vehicle, cyclist, pedestrian; "
                                   "beside it the same metric on the real images (ceiling) and on a layout-ignored control "
                                   "(each keyframe scored with the image of the same camera half the scene away).")  # fmt: skip
    p.add_argument("--gen", required=True, type=Path, help="generated scenes, nuScenes-format root with the reference's sample tokens")
    p.add_argument("--ref", required=True, type=Path, help="reference SynthTown root with camera buffers (synthtown/buffers/)")
    p.add_argument("--model", type=Path, default=None,
                   help="layout2d run directory or checkpoint directory (default: the shipped weights)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    p.add_argument("--views", default=None, help="comma list of camera channels (default: the six nuScenes cameras)")
    p.add_argument("--scenes", default=None, help="comma list of reference scene names (default: every scene the generated root has)")
    p.add_argument("--samples", type=int, default=6, help="rows in the picture OUT/<name>_samples.png")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    add_common_options(p)
    p.set_defaults(func=run_layout2d)


def _names(text: str | None, flag: str) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if not names:
        raise ConfigError(f"{flag} must be a comma list of names, got {text!r}")
    return names


def run_layout2d(args: argparse.Namespace) -> int:
    if args.batch_size < 1 or args.samples < 1:
        raise ConfigError("--batch-size and --samples must be >= 1")
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        raise ConfigError(f"--device: {e}") from None
    from .shipped import resolve_evaluator

    path, evaluator = resolve_evaluator(args.model, "layout2d", "layout2d")
    model, cfg, info = load_layout2d_model(path, ema=not args.no_ema)
    views = _names(args.views, "--views") or CAMERA_CHANNELS
    nb = args.bootstrap if args.bootstrap is not None else 200
    result = evaluate_layout2d(model, args.gen, args.ref, views=views, scenes=_names(args.scenes, "--scenes"), batch_size=args.batch_size,
                               device=device, num_resamples=nb, level=args.level, seed=args.seed, num_pictures=args.samples,
                               progress=True)  # fmt: skip
    m = cfg.model
    meta = {
        "protocol": {"version": PROTOCOL_VERSION, "classes": list(LAYOUT2D_CLASSES), "scored": list(SCORED_CLASSES),
                     "views": list(views), "image_size": list(m.image_size), "output_size": list(m.output_size),
                     "iou": "summed intersections / summed unions over all images", "labels": "reference buffers, nearest",
                     "control": "reference image of keyframe (k + n // 2) mod n, same scene and camera",
                     "bootstrap": {"resamples": nb, "level": args.level, "seed": args.seed, "groups": "scenes"}},
        "evaluator": {**info, **evaluator, "task": info.get("task") or "layout2d", "protocol_version": PROTOCOL_VERSION},
        "generated": str(Path(args.gen).resolve()),
        "reference": str(Path(args.ref).resolve()),
    }  # fmt: skip
    json_path, md_path, png_path = write_layout2d_report(args.out, args.name or "layout2d", result, meta)
    print(md_path.read_text())
    print(f"wrote {json_path}, {md_path} and {png_path}")
    return 0
