"""``genesis-drive generate``: generate a nuScenes-format root's scenes again from their layouts.

``--modalities camera,lidar`` (the default): joint generation (:mod:`generate.joint`): the camera video
first (``--mode`` a camera mode), then every keyframe sweep after the first by the LiDAR DiT from the
generated video, the layout and (``--lidar-reference real``) keyframe 0's real sweep, then its own
sweeps; OUT is one nuScenes-format root with the generated camera frames and LiDAR keyframe sweeps.

``--modalities camera``: for every chosen scene of ``--from ROOT`` the camera DiT generates the six
views chunk after chunk (each chunk continues the last latent frame of the previous one), from the
scene's layout and caption; ``--out OUT`` becomes a nuScenes-format root with the same tokens and
annotations whose camera files are the generated frames (see :mod:`generate.root`).

``--modalities lidar --mode forecast``: for every keyframe with 6 keyframes after it, the LiDAR DiT
forecasts the sweeps 1 .. 6 keyframes ahead from that keyframe's sweep, the layout and the real
camera images; OUT holds ``<sample_token>/<k>.pcd.bin`` (the layout ``genesis-drive eval lidar``
reads; :mod:`generate.lidar`). ``--mode copy-reference`` writes the baseline (the keyframe's sweep
moved by the ego motion), ``--mode reconstruct`` the LiDAR AE's round trip of the true sweeps.

Networks: ``--checkpoints DIR`` (layout in :mod:`generate.checkpoints`), default the shipped ones.
Bad input (options, checkpoints, the source root, an occupied OUT) is one clear error line (exit
code 1) before any sampling; OUT is written into a temporary sibling and renamed at the end, so a
failure leaves nothing at OUT.

Scale and resume (:mod:`generate.shard`): each scene is made as one part in ``OUT.parts/`` (with a
fingerprint of the arguments and networks); a rerun skips complete matching parts. ``--shard I/N``
makes only shard I's scenes (no OUT), ``--merge-only`` writes OUT from every shard's parts, and under
torchrun each rank makes its shard and rank 0 merges after a barrier (``--device cuda``: cuda:LOCAL_RANK).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from ..errors import ConfigError, DataError
from .camera import DEFAULT_FIRST_FRAME_STRENGTH, DEFAULT_STRENGTH, MODES, check_drop, mode_strength
from .joint import LIDAR_REFERENCES
from .lidar import LIDAR_MODES
from .shard import Split, parse_shard, parts_dir, torchrun_rank

__all__ = [
    "register", "add_arguments", "check_arguments", "parse_modalities", "is_joint", "strength", "camera_guidance", "lidar_guidance", "work_split", "run",
    "MODES", "LIDAR_MODES", "MODALITIES", "JOINT", "DEFAULT_STEPS", "DEFAULT_GUIDANCE", "DEFAULT_LIDAR_GUIDANCE", "DEFAULT_STRENGTH",
]  # fmt: skip

#: Modalities that can be generated: one of them, or both together (:data:`JOINT`).
MODALITIES = ("camera", "lidar")
#: The joint modalities, as :func:`parse_modalities` returns them.
JOINT = ("camera", "lidar")

#: Sampler defaults (Euler steps, classifier-free guidance scale).
DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 2.0
#: The LiDAR DiT's default guidance scale: the best of 1 / 1.5 / 2 on a validation root (SynthTown seed
#: 2000, neither trained nor tested on; docs/benchmarks.md, "LiDAR forecasting").
DEFAULT_LIDAR_GUIDANCE = 1.5

_EPILOG = """\
examples:
  genesis-drive generate --from data/st_heldout --out gen/joint --seed 0      (camera,lidar: the default)
  genesis-drive generate --from data/st_heldout --out gen/free --modalities camera --mode free --seed 0
  genesis-drive generate --from data/st_heldout --out gen/ff --modalities camera --mode first-frame --scenes st-1000-0000
  genesis-drive generate --from ROOT --out OUT --modalities camera --mode noisy-latent --strength 0.6 --checkpoints runs/ckpts
  genesis-drive generate --from data/st_heldout --out gen/lidar --modalities lidar --mode forecast --seed 0
  genesis-drive generate --from data/st_heldout --out gen/lidar-nocam --modalities lidar --mode forecast --drop-conditions camera
  genesis-drive generate --from data/st_heldout --out gen/cam-nopose --modalities camera --drop-conditions pedestrians
  genesis-drive generate --from data/st_heldout --out gen/joint-noref --modalities camera lidar --lidar-reference none
  genesis-drive generate --from data/st_train --out gen/train --shard 3/16      (SLURM / Ray: one shard's parts)
  genesis-drive generate --from data/st_train --out gen/train --merge-only      (then OUT from all parts)
  torchrun --nproc_per_node 8 -m genesis_drive.cli generate --from data/st_train --out gen/train --device cuda
"""


def add_arguments(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``generate`` subcommand's parser (its options) to the top-level parser; returns it."""
    p = subparsers.add_parser(
        "generate",
        help="generate the camera views and LiDAR sweeps of a nuScenes-format root's scenes from their layouts",
        description=__doc__.splitlines()[0],
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from", dest="source", metavar="ROOT", type=Path, help="source nuScenes-format root (layouts, captions)")
    src.add_argument("--scene", metavar="FILE", type=Path, default=None,
                     help="a scene file (docs/scene_files.md) instead of a root: rendered with SynthTown first (its real "
                          "reference), then generated from")
    p.add_argument("--scene-root", metavar="DIR", type=Path, default=None,
                   help="with --scene: keep the rendered reference root here (default: a temporary folder, deleted)")
    p.add_argument("--out", metavar="OUT", type=Path, required=True, help="generated nuScenes-format root to write (must not exist or be empty)")
    p.add_argument("--modalities", nargs="+", default=[",".join(JOINT)], metavar="M",
                   help="what to generate: camera,lidar (default; joint: the LiDAR from the generated video), camera, or lidar")
    p.add_argument("--mode", default=None, metavar="MODE",
                   help=f"camera and camera,lidar: {' | '.join(MODES)} (default free); lidar: {' | '.join(LIDAR_MODES)} "
                        "(default forecast)")
    p.add_argument("--lidar-reference", default=None, metavar="REF",
                   help=f"camera,lidar only: {' | '.join(LIDAR_REFERENCES)}: the LiDAR DiT's reference sweep is keyframe 0's "
                        "real sweep, then its own generated sweeps (real), or dropped (none: layout + video only); default real")
    p.add_argument("--drop-conditions", nargs="+", default=[], metavar="GROUP",
                   help="condition groups left out at sampling, for ablations: --modalities camera (caption, ego, boxes, "
                        "pedestrians, layout) or lidar --mode forecast (reference, camera, layout, boxes, ego)")
    p.add_argument("--strength", type=float, default=None, metavar="S",
                   help=f"noisy-latent mode: noise level in [0, 1] the real latents start from (1 = pure noise; "
                        f"default {DEFAULT_STRENGTH}); first-frame mode: below 1, each chunk starts from its given frame "
                        f"held still, noised to S (1 = pure noise; default {DEFAULT_FIRST_FRAME_STRENGTH})")
    p.add_argument("--scenes", nargs="+", metavar="NAME", help="scene names to generate (default: every scene)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"sampler steps (default {DEFAULT_STEPS})")
    p.add_argument("--guidance", type=float, default=None,
                   help=f"the camera DiT's classifier-free guidance scale (1 = none, half the cost; default {DEFAULT_GUIDANCE}); "
                        "with --modalities lidar alone it stands for --lidar-guidance")
    p.add_argument("--lidar-guidance", type=float, default=None,
                   help=f"the LiDAR DiT's guidance scale (forecast and joint; default {DEFAULT_LIDAR_GUIDANCE})")
    p.add_argument("--sampler", default="euler", metavar="NAME", help="euler | heun (default: euler)")
    p.add_argument("--checkpoints", metavar="DIR", type=Path, default=None,
                   help="folder with camera_vae/ and camera_dit/ runs (lidar: lidar_ae/, lidar_dit/, camera_vae/; camera,lidar: "
                        "all four; default: the shipped checkpoints)")
    p.add_argument("--captions", metavar="MANIFEST", type=Path, default=None,
                   help="DataCrafter manifest of ROOT with caption embeddings (`genesis-drive curate ROOT --out M`): "
                        "each chunk is generated under its best-overlapping clip's caption (default: no caption)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists; regenerate parts in OUT.parts/ made with other arguments")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--shard", metavar="I/N", default=None,
                   help="make only shard I of N (0 <= I < N: scene i of the sorted chosen scenes goes to shard i %% N) as "
                        "parts in OUT.parts/, without writing OUT (SLURM arrays, Ray tasks); then run --merge-only. Under "
                        "torchrun the shard is the rank and rank 0 merges")
    p.add_argument("--merge-only", action="store_true",
                   help="generate nothing: write OUT from the complete parts in OUT.parts/ of every shard (same arguments)")
    return p


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``generate`` to the top-level ``genesis-drive`` parser (``func`` = :func:`run`)."""
    add_arguments(subparsers).set_defaults(func=run)


def parse_modalities(values: list[str]) -> tuple[str, ...]:
    """``--modalities`` values (space and / or comma separated) -> modality names, checked: one
    modality, or both (returned as :data:`JOINT`, whatever order they were given in)."""
    names = tuple(dict.fromkeys(m.strip().lower() for v in values for m in v.split(",") if m.strip()))
    if not names:
        raise ConfigError("--modalities: give one of " + " | ".join(MODALITIES))
    unknown = [m for m in names if m not in MODALITIES]
    if unknown:
        raise ConfigError(f"--modalities: unknown {unknown}; expected {' | '.join(MODALITIES)}")
    return JOINT if set(names) == set(JOINT) else names


def is_joint(args: argparse.Namespace) -> bool:
    """Whether the options ask for joint camera + LiDAR generation."""
    return parse_modalities(args.modalities) == JOINT


def mode_of(args: argparse.Namespace) -> str:
    """The ``--mode`` of the options, or the modality's default (free / forecast)."""
    if args.mode is not None:
        return args.mode
    return "forecast" if parse_modalities(args.modalities) == ("lidar",) else "free"


def check_arguments(args: argparse.Namespace) -> None:
    """ConfigError / DataError (one line naming the option) for bad option values, before any work."""
    lidar = parse_modalities(args.modalities) == ("lidar",)
    mode, modes = mode_of(args), (LIDAR_MODES if lidar else MODES)
    if mode not in modes:
        raise ConfigError(f"--mode: unknown {'lidar' if lidar else 'camera'} mode {mode!r}; expected {' | '.join(modes)}")
    reference = getattr(args, "lidar_reference", None)
    if is_joint(args):
        if args.drop_conditions:
            raise ConfigError("--drop-conditions applies to --modalities camera or lidar alone (with camera,lidar the "
                              "reference is chosen by --lidar-reference real | none)")  # fmt: skip
        if reference is not None and reference not in LIDAR_REFERENCES:
            raise ConfigError(f"--lidar-reference: unknown {reference!r}; expected {' | '.join(LIDAR_REFERENCES)}")
    elif reference is not None:
        raise ConfigError("--lidar-reference applies to --modalities camera,lidar only")
    if args.drop_conditions and lidar and mode != "forecast":
        raise ConfigError("--drop-conditions applies to --modalities lidar with --mode forecast only")
    if not lidar and not is_joint(args):
        check_drop(args.drop_conditions)
    if lidar and args.strength is not None:
        raise ConfigError("--strength applies to the camera modes noisy-latent and first-frame only")
    if not lidar:
        mode_strength(mode, args.strength)  # range and mode
    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    for flag, value in (("--guidance", args.guidance), ("--lidar-guidance", getattr(args, "lidar_guidance", None))):
        if value is not None and not value >= 0:
            raise ConfigError(f"{flag} must be >= 0, got {value}")
    if args.sampler not in ("euler", "heun"):
        raise ConfigError(f"--sampler: unknown sampler {args.sampler!r}; expected euler | heun")
    work_split(args, init=False)  # --shard / --merge-only / torchrun: a valid combination
    from .root import out_occupied

    if out_occupied(args.out) and not args.overwrite:
        raise DataError("already exists and is not empty (pass --overwrite to replace it)", args.out, "--out")
    if args.out.resolve() == args.source.resolve():
        raise DataError("--out must differ from --from", args.out, "--out")
    if not args.source.is_dir():
        raise DataError("source root not found (a nuScenes-format root: v1.0-*/ tables, samples/, sweeps/)", args.source, "--from")


def work_split(args: argparse.Namespace, environ: Mapping[str, str] = os.environ, *, init: bool = True) -> tuple[Split, Optional[int]]:
    """This process's :class:`generate.shard.Split` and its LOCAL_RANK under torchrun (else None):
    ``--merge-only`` (no generation, the merge), ``--shard I/N`` (parts only), torchrun with
    WORLD_SIZE > 1 (rank of world; rank 0 merges after a barrier: with ``init`` the gloo process
    group is initialised here), or a plain run (every scene, then the merge). ConfigError for a
    combination that cannot be meant (--shard with torchrun, --merge-only with either)."""
    shard, merge_only = getattr(args, "shard", None), getattr(args, "merge_only", False)
    ranks = torchrun_rank(environ)
    distributed = ranks is not None and ranks[1] > 1
    if shard is not None and distributed:
        raise ConfigError(f"--shard {shard}: under torchrun (WORLD_SIZE {ranks[1]}) the shard is the rank; drop --shard")
    if merge_only and (shard is not None or distributed):
        raise ConfigError("--merge-only runs once, alone: not with --shard or under torchrun")
    if merge_only:
        return Split(generate=False, log=True), None
    if shard is not None:
        i, n = parse_shard(shard)
        return Split(i, n, merge=False, log=True), None
    if not distributed:
        return Split(log=True), None
    rank, world, local = ranks
    barrier = None
    if init:
        import datetime

        import torch.distributed as dist

        if not dist.is_initialized():  # torchrun's env:// rendezvous; gloo: a CPU barrier is all that is exchanged
            dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))
        barrier = dist.barrier
    return Split(rank, world, merge=rank == 0, barrier=barrier, log=True, position=None), local


def camera_guidance(args: argparse.Namespace) -> float:
    """The camera DiT's guidance scale of the options (:data:`DEFAULT_GUIDANCE` when not given)."""
    return DEFAULT_GUIDANCE if args.guidance is None else args.guidance


def lidar_guidance(args: argparse.Namespace) -> float:
    """The LiDAR DiT's guidance scale: ``--lidar-guidance``; with ``--modalities lidar`` alone
    ``--guidance`` also sets it; else :data:`DEFAULT_LIDAR_GUIDANCE`."""
    if getattr(args, "lidar_guidance", None) is not None:
        return args.lidar_guidance
    if parse_modalities(args.modalities) == ("lidar",) and args.guidance is not None:
        return args.guidance
    return DEFAULT_LIDAR_GUIDANCE


def strength(args: argparse.Namespace) -> float:
    """The camera mode's start noise level of the options (:func:`generate.camera.mode_strength`)."""
    return mode_strength(mode_of(args), args.strength)


def run(args: argparse.Namespace) -> int:
    """``--scene FILE``: load and check the scene, render it with SynthTown into ``--scene-root``
    (or a temporary folder beside OUT, deleted afterwards) and generate from that root; else
    generate from ``--from ROOT`` (:func:`run_root`)."""
    if args.scene is None:
        if args.scene_root is not None:
            raise ConfigError("--scene-root applies to --scene FILE only")
        return run_root(args)
    split, _ = work_split(args, init=False)
    if (split.count, split.generate) != (1, True):
        raise ConfigError("--scene FILE is one scene: no --shard, --merge-only or torchrun")
    import shutil
    import tempfile

    from ..scene.io import load_scene
    from ..scene.to_root import to_root

    if not args.scene.is_file():
        raise DataError("scene file not found", args.scene, "--scene")
    scene = load_scene(args.scene)
    args.source = args.scene.parent  # the option checks first (a root stands in for the one to render)
    check_arguments(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    keep = args.scene_root is not None
    root = args.scene_root if keep else Path(tempfile.mkdtemp(prefix=f".{args.out.name}.scene-", dir=args.out.parent))
    try:
        to_root(scene, root, overwrite=True, progress=not args.no_progress)
        print(f"rendered scene {args.scene} into {root}" + ("" if keep else " (temporary)"))
        args.source = root
        return run_root(args)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def run_root(args: argparse.Namespace) -> int:
    """Check everything, load the networks, generate, write OUT; print a summary. 0 on success."""
    import torch

    check_arguments(args)
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        raise ConfigError(f"--device: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device}: CUDA is not available here (use --device cpu)")
    split, local_rank = work_split(args)
    finished = False
    try:
        if local_rank is not None and device.type == "cuda" and device.index is None:  # torchrun: one GPU per local rank
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        code = _run_modalities(args, device, split)
        finished = True
        return code
    finally:
        if split.barrier is not None:  # this command joined torchrun's group: leave it (all ranks together on success)
            from ..train.distributed import shutdown_distributed

            shutdown_distributed(synchronize=finished)


def _after(args: argparse.Namespace, split: Split) -> bool:
    """Print where a non-merging shard's parts are; whether this process wrote OUT (prints its summary)."""
    if split.merge:
        return True
    how = "rank 0 merges them" if split.barrier is not None else "write OUT with the same command and --merge-only once every shard is done"
    print(f"{split.name}: parts in {parts_dir(args.out)}; {how}")
    return False


def _run_modalities(args: argparse.Namespace, device, split: Split) -> int:
    from ..layout.conditions import ConditionTransform
    from .checkpoints import checkpoint_dirs, load_camera_networks
    from .pipeline import generate_root

    mode = mode_of(args)
    if parse_modalities(args.modalities) == ("lidar",):
        return run_lidar(args, mode, device, split)
    if is_joint(args):
        return run_joint(args, mode, device, split)
    nets = load_camera_networks(checkpoint_dirs(args.checkpoints, "camera"), device)
    cfg = nets.dit_config
    if args.captions is None and cfg.clips.manifest is not None:
        print(f"note: the DiT was trained with captions ({cfg.clips.manifest}); generating without them "
              "(the caption-dropped condition); pass --captions MANIFEST of ROOT to use them", file=sys.stderr)  # fmt: skip
    out = generate_root(
        args.source, args.out, dit=nets.dit, codec=nets.vae, transform=ConditionTransform(cfg.conditions),
        views=cfg.views, num_frames=cfg.clips.num_frames, mode=mode, strength=strength(args), scenes=args.scenes,
        seed=args.seed, steps=args.steps, guidance=camera_guidance(args), method=args.sampler, shift=cfg.time.shift,
        captions=args.captions, drop=args.drop_conditions, overwrite=args.overwrite, progress=not args.no_progress,
        split=split,
    )  # fmt: skip
    if not _after(args, split):
        return 0
    w, h = cfg.image_size
    print(f"wrote {out}: {len(cfg.views)} views at {w}x{h}, mode {mode}, seed {args.seed} "
          f"(DiT {nets.info['camera_dit']['checkpoint']}, VAE {nets.info['camera_vae']['checkpoint']})")  # fmt: skip
    print(f"videos: {out / 'generated' / 'videos'}  clips for `genesis-drive eval video --gen`: {out / 'generated' / 'clips'}")
    return 0


def run_lidar(args: argparse.Namespace, mode: str, device, split: Optional[Split] = None) -> int:
    """``--modalities lidar``: load the LiDAR networks (none for copy-reference), forecast, write OUT."""
    from .checkpoints import checkpoint_dirs
    from .lidar import forecast_root, load_lidar_networks

    nets = None
    if mode != "copy-reference":
        nets = load_lidar_networks(checkpoint_dirs(args.checkpoints, "lidar"), device, need_dit=mode == "forecast")
    out = forecast_root(args.source, args.out, nets=nets, mode=mode, scenes=args.scenes, seed=args.seed, steps=args.steps,
                        guidance=lidar_guidance(args) if mode == "forecast" else 1.0, drop=args.drop_conditions,
                        overwrite=args.overwrite, progress=not args.no_progress, split=split)  # fmt: skip
    if split is not None and not _after(args, split):
        return 0
    print(f"wrote {out}: LiDAR {mode}, seed {args.seed}; score it with "
          f"`genesis-drive eval lidar --gen {out} --ref {args.source} --out DIR`")  # fmt: skip
    return 0


def run_joint(args: argparse.Namespace, mode: str, device, split: Optional[Split] = None) -> int:
    """``--modalities camera,lidar``: load and cross-check all four networks (the LiDAR DiT's camera VAE
    must be DIR/camera_vae, the version its checkpoint records), generate the joint root."""
    from .checkpoints import checkpoint_dirs, load_camera_networks
    from .joint import generate_joint_root
    from .lidar import load_lidar_networks

    dirs = {**checkpoint_dirs(args.checkpoints, "camera"), **checkpoint_dirs(args.checkpoints, "lidar")}
    cam = load_camera_networks(dirs, device)
    lid = load_lidar_networks(dirs, device)
    reference = args.lidar_reference or "real"
    if args.captions is None and cam.dit_config.clips.manifest is not None:
        print(f"note: the camera DiT was trained with captions ({cam.dit_config.clips.manifest}); generating without them "
              "(the caption-dropped condition); pass --captions MANIFEST of ROOT to use them", file=sys.stderr)  # fmt: skip
    out = generate_joint_root(
        args.source, args.out, camera=cam, lidar=lid, mode=mode, strength=strength(args), reference=reference,
        scenes=args.scenes, seed=args.seed, steps=args.steps, guidance=camera_guidance(args), method=args.sampler,
        captions=args.captions, overwrite=args.overwrite, progress=not args.no_progress, split=split,
        lidar_guidance=lidar_guidance(args),
    )  # fmt: skip
    if split is not None and not _after(args, split):
        return 0
    w, h = cam.dit_config.image_size
    print(f"wrote {out}: {len(cam.dit_config.views)} views at {w}x{h} (camera mode {mode}) + LiDAR keyframe sweeps "
          f"(reference {reference}, horizon {lid.dit_config.horizon}), seed {args.seed}")  # fmt: skip
    print(f"videos: {out / 'generated' / 'videos'}  LiDAR windows: {out / 'generated' / 'lidar.json'}")
    return 0
