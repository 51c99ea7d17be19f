"""``genesis-drive eval <metric> ...``: evaluation subcommands writing a JSON report and a markdown table.

Each subcommand has its own ``register_*`` function taking the ``eval`` sub-parsers, listed in
:data:`SUBCOMMANDS`: ``video`` and ``lidar`` here, the learned evaluators (``layout``,
``consistency``, ``fd-synth`` through :mod:`.learned_cli`, ``layout2d`` through :mod:`.layout2d`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError

__all__ = ["DEFAULT_WEIGHTS_DIR", "SUBCOMMANDS", "add_common_options", "register", "register_learned", "register_lidar", "register_video"]

#: Where weight files are looked up when no explicit path is given.
DEFAULT_WEIGHTS_DIR = Path("~/.cache/genesis-drive/weights")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def add_common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="output folder for <name>.json and <name>.md")
    p.add_argument("--name", default=None, help="report file stem (default: the subcommand)")
    p.add_argument("--bootstrap", type=int, default=None, metavar="N", help="bootstrap resamples (0: off)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")


# -- video --------------------------------------------------------------------------------------
def register_video(sub) -> None:
    from .extractors import RESIZE_MODES
    from .video import VIDEO_PROTOCOLS

    p = sub.add_parser("video", help="FID_multi / FVD_multi of generated multi-view clips",
                       description="FID_multi (Inception-v3) and FVD_multi (I3D) of generated clips against reference clips; "
                                   "every view of every clip is a sample. See docs/metrics.md.")  # fmt: skip
    p.add_argument("--gen", required=True, type=Path, help="generated clips: DIR/<clip_id>/<VIEW>.mp4 or DIR/<clip_id>/<VIEW>/*.png")
    p.add_argument("--ref", required=True, type=Path, help="reference clips: same layout, or a nuScenes-format root")
    p.add_argument("--ref-version", default=None, help="table version of a nuScenes reference root (auto when one)")
    p.add_argument("--metrics", default="fid,fvd", help="comma list of fid, fvd")
    p.add_argument("--preset", choices=sorted(VIDEO_PROTOCOLS), default="free", help="protocol preset (then overridden by the flags below)")
    p.add_argument("--views", default=None, help="comma list of camera channels (default: the six nuScenes cameras)")
    p.add_argument("--num-frames", type=int, default=None, help="frames per clip (default 16)")
    p.add_argument("--frame-stride", type=int, default=None)
    p.add_argument("--cond-frames", type=int, default=None, help="leading conditioning frames (excluded from FID)")
    p.add_argument("--fvd-exclude-cond", action="store_true", default=None, help="also drop conditioning frames from FVD")
    p.add_argument("--fid-include-cond", action="store_true", help="keep conditioning frames in FID")
    p.add_argument("--fid-frame-stride", type=int, default=None)
    p.add_argument("--image-size", type=_size, default=None, help="WIDTHxHEIGHT both sets are brought to first (cover + centre crop)")
    p.add_argument("--fid-size", type=int, default=None, help="Inception input side (default 299)")
    p.add_argument("--fid-resize", choices=RESIZE_MODES, default=None)
    p.add_argument("--fvd-size", type=int, default=None, help="I3D input side (default 224)")
    p.add_argument("--fvd-resize", choices=RESIZE_MODES, default=None)
    p.add_argument("--fvd-crop", choices=("none", "center"), default=None)
    p.add_argument("--ref-window-stride", type=int, default=None, help="frames between reference clip starts (nuScenes root)")
    p.add_argument("--max-gen-clips", type=int, default=None)
    p.add_argument("--max-ref-clips", type=int, default=None)
    p.add_argument("--weights-dir", type=Path, default=DEFAULT_WEIGHTS_DIR, help=f"folder of weight files (default {DEFAULT_WEIGHTS_DIR})")
    p.add_argument("--inception-weights", type=Path, default=None, help="FID Inception state dict (pt_inception-2015-12-05-6726825d.pth)")
    p.add_argument("--i3d-weights", type=Path, default=None, help="I3D Kinetics-400 state dict (i3d_pretrained_400.pt)")
    p.add_argument("--cache-dir", type=Path, default=None, help="reference statistics cache (default: OUT/reference_stats)")
    p.add_argument("--fd-method", choices=("eigh", "sqrtm"), default="eigh", help="matrix square root: torch eigh or scipy sqrtm")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu", help="torch device for the feature networks")
    add_common_options(p)
    p.set_defaults(func=run_video)


def run_video(args) -> int:
    import torch

    from .extractors import fid_extractor, fvd_extractor
    from .fd_metric import FrechetDistance
    from .i3d import I3D_WEIGHTS
    from .inception import INCEPTION_FID_WEIGHTS
    from .report import write_report
    from .video import VIDEO_PROTOCOLS, VideoEvaluator, with_overrides
    from .video_io import open_clip_source
    from .weights import resolve_weights

    wanted = {m.strip().lower() for m in args.metrics.split(",") if m.strip()}
    if not wanted or wanted - {"fid", "fvd"}:
        raise ConfigError(f"--metrics must be a comma list of fid, fvd; got {args.metrics!r}")
    protocol = with_overrides(
        VIDEO_PROTOCOLS[args.preset],
        views=tuple(v.strip() for v in args.views.split(",")) if args.views else None,
        num_frames=args.num_frames, frame_stride=args.frame_stride, cond_frames=args.cond_frames,
        fvd_exclude_cond=args.fvd_exclude_cond, fid_exclude_cond=False if args.fid_include_cond else None,
        fid_frame_stride=args.fid_frame_stride, image_size=args.image_size, fid_size=args.fid_size,
        fid_resize_mode=args.fid_resize, fvd_size=args.fvd_size, fvd_resize_mode=args.fvd_resize, fvd_crop=args.fvd_crop,
        ref_window_stride=args.ref_window_stride, max_gen_clips=args.max_gen_clips, max_ref_clips=args.max_ref_clips,
    )  # fmt: skip
    device = torch.device(args.device)
    image_metrics, video_metrics, weights = [], [], {}
    keep = (args.bootstrap if args.bootstrap is not None else 100) > 0
    if "fid" in wanted:
        path = resolve_weights(INCEPTION_FID_WEIGHTS, args.inception_weights, args.weights_dir)
        ext, digest = fid_extractor(path, protocol.fid_size, protocol.fid_resize_mode)
        ident = {"network": "FIDInceptionV3", "weights_sha256": digest, **ext.protocol()}
        image_metrics.append(FrechetDistance(ext.to(device), name="FID_multi", method=args.fd_method, keep_features=keep, identity=ident))
        weights["inception"] = {"path": str(path), "sha256": digest}
    if "fvd" in wanted:
        path = resolve_weights(I3D_WEIGHTS, args.i3d_weights, args.weights_dir)
        ext, digest = fvd_extractor(path, protocol.fvd_size, protocol.fvd_resize_mode, protocol.fvd_crop)
        ident = {"network": "InceptionI3D-logits400", "weights_sha256": digest, **ext.protocol()}
        video_metrics.append(FrechetDistance(ext.to(device), name="FVD_multi", method=args.fd_method, keep_features=keep, identity=ident))
        weights["i3d"] = {"path": str(path), "sha256": digest}
    # sources yield every frame of the span (stride 1); the evaluator takes every frame_stride-th
    gen = open_clip_source(args.gen, protocol.views, protocol.span, protocol.ref_window_stride, 1,
                           max_frames=protocol.span, max_clips=protocol.max_gen_clips)  # fmt: skip
    ref = open_clip_source(args.ref, protocol.views, protocol.span, protocol.ref_window_stride, 1,
                           max_frames=protocol.span, max_clips=protocol.max_ref_clips, version=args.ref_version)  # fmt: skip
    evaluator = VideoEvaluator(protocol, image_metrics, video_metrics, batch_size=args.batch_size)
    cache_dir = args.cache_dir if args.cache_dir is not None else args.out / "reference_stats"
    rows, meta = evaluator.evaluate(gen, ref, cache_dir, num_resamples=args.bootstrap if args.bootstrap is not None else 100,
                                    level=args.level, seed=args.seed)  # fmt: skip
    meta["weights"] = weights
    json_path, md_path = write_report(args.out, args.name or "video", "Video metrics (FID_multi / FVD_multi)", rows, meta)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    return 0


# -- lidar --------------------------------------------------------------------------------------
def register_lidar(sub) -> None:
    from ..data.chamfer import CHAMFER_PROTOCOLS

    p = sub.add_parser("lidar", help="Chamfer@1/2/3 s and BEV MMD/JSD of generated LiDAR sweeps",
                       description="Chamfer distance per horizon (ViDAR/HERMES protocol by default) and LiDARGen-style "
                                   "BEV-histogram MMD/JSD of generated sweeps against a nuScenes-format root. See docs/metrics.md.")  # fmt: skip
    p.add_argument("--gen", required=True, type=Path, help="generated sweeps: DIR/<sample_token>/<k>.pcd.bin (k keyframes ahead)")
    p.add_argument("--ref", required=True, type=Path, help="nuScenes-format root with the ground-truth sweeps")
    p.add_argument("--ref-version", default=None)
    p.add_argument("--protocol", choices=sorted(CHAMFER_PROTOCOLS), default="vidar", help="Chamfer protocol (default vidar = ViDAR/HERMES)")
    p.add_argument("--no-chamfer", action="store_true", help="skip Chamfer")
    p.add_argument("--no-generation", action="store_true", help="skip MMD/JSD")
    p.add_argument("--mmd-norm", choices=("spectral", "frobenius"), default="spectral",
                   help="histogram distance in the MMD kernel: spectral (LiDARGen's code) or frobenius")  # fmt: skip
    p.add_argument("--point-dims", type=int, default=5, help="float32 values per point in the generated files (nuScenes: 5)")
    p.add_argument("--backend", choices=("kdtree", "cdist"), default="kdtree", help="nearest-neighbour search for Chamfer")
    p.add_argument("--workers", type=int, default=-1, help="cKDTree query threads (-1: all cores)")
    add_common_options(p)
    p.set_defaults(func=run_lidar)


def run_lidar(args) -> int:
    from ..data.nuscenes import NuScenesReader
    from ..data.chamfer import CHAMFER_PROTOCOLS
    from .lidar import LidarEvaluator, scan_generated_sweeps
    from .report import write_report

    sweeps = scan_generated_sweeps(args.gen)
    reader = NuScenesReader(args.ref, args.ref_version)
    evaluator = LidarEvaluator(reader, CHAMFER_PROTOCOLS[args.protocol], chamfer=not args.no_chamfer, generation=not args.no_generation,
                               point_dims=args.point_dims, mmd_norm=args.mmd_norm, backend=args.backend, workers=args.workers)  # fmt: skip
    rows, meta = evaluator.evaluate(sweeps, num_resamples=args.bootstrap if args.bootstrap is not None else 1000, level=args.level, seed=args.seed)
    meta["generated"] = str(args.gen.resolve())
    json_path, md_path = write_report(args.out, args.name or "lidar", "LiDAR metrics", rows, meta)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    return 0


def register_learned(sub) -> None:
    """``layout``, ``consistency``, ``fd-synth`` (:mod:`.learned_cli`) and ``layout2d``
    (:mod:`.layout2d`): the learned evaluators."""
    from .layout2d import register_layout2d
    from .learned_cli import register as register_learned_evaluators

    register_learned_evaluators(sub)
    register_layout2d(sub)


#: The ``eval`` subcommands, each registered on the ``eval`` sub-parsers in this order.
SUBCOMMANDS = (register_video, register_lidar, register_learned)


def register(subparsers) -> None:
    """Add ``eval`` with its subcommands to the top-level ``genesis-drive`` sub-parsers."""
    p = subparsers.add_parser("eval", help="evaluation metrics (FID/FVD, Chamfer, MMD/JSD, ...)",
                              description="Evaluation suite; every protocol choice is documented in docs/metrics.md.")  # fmt: skip
    sub = p.add_subparsers(dest="eval_command", metavar="METRIC")
    for reg in SUBCOMMANDS:
        reg(sub)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
