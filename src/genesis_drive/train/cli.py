"""``genesis-drive train TASK``: resolve a run config (preset + YAML files + --set) and train;
``genesis-drive calibrate CODEC RUN``: the latent calibration of a trained codec run
(:mod:`genesis_drive.train.calibration`).

The training command runs as one process or under ``torchrun`` (DDP/FSDP); see docs/training.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from ..config import apply_overrides, config_to_dict, load_yaml_overrides, resolve_preset
from ..errors import ConfigError
from .task import TaskDef
from .tasks import TASKS

__all__ = ["register", "register_calibrate", "resolve_run_config", "run", "run_calibrate"]

_EPILOG = """\
examples:
  genesis-drive train frame_ae --preset tiny --data data/synthtown --out runs/ae
  genesis-drive train frame_ae --preset tiny --data data/synthtown --out runs/ae --resume --set train.steps=400
  torchrun --standalone --nproc_per_node 8 --no-python genesis-drive train frame_ae --preset small --data ROOT --out runs/ae8
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``calibrate`` subcommands to the top-level ``genesis-drive`` parser."""
    p = subparsers.add_parser(
        "train",
        help="train a model task (one process, or under torchrun for DDP/FSDP)",
        description="Train a model task: resolve its run config (preset, then YAML files, then --set) "
        "and run the training loop into RUN_DIR. The same command runs under torchrun.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("task", metavar="TASK", help=f"task name: {', '.join(TASKS)}")
    p.add_argument("--preset", default="tiny", help="named size preset of the task (default: tiny)")
    p.add_argument("--config", dest="config_files", metavar="FILE.yaml", action="append", default=[],
                   help="YAML file of nested overrides, applied before --set (repeatable)")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", nargs="+", action="extend", default=[],
                   help="dotted config overrides, e.g. train.lr=1e-4 model.channels=32,64")
    p.add_argument("--out", metavar="RUN_DIR", type=Path,
                   help="run directory: config, checkpoints, logs, previews")
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint in RUN_DIR")
    p.add_argument("--init-from", metavar="CKPT", type=Path, default=None,
                   help="fine-tune: start a new run from the (EMA) weights of this checkpoint or run directory "
                        "of the same task, with a fresh optimizer and schedule")
    p.add_argument("--data", metavar="ROOT", type=Path, help="dataset root (nuScenes format)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.set_defaults(func=run)
    register_calibrate(subparsers)


_CALIBRATE_EPILOG = """\
examples:
  genesis-drive calibrate camera-vae runs/camera-vae-tiny --data data/st_train --out ckpt/camera_vae
  genesis-drive calibrate lidar-ae runs/lidar-ae-tiny --data data/st_train --out ckpt/lidar_ae --tune-sweeps 16
"""


def register_calibrate(subparsers: argparse._SubParsersAction) -> None:
    """Add ``calibrate camera-vae|lidar-ae RUN --data ROOT --out DIR`` to the top-level parser."""
    p = subparsers.add_parser(
        "calibrate",
        help="write a trained codec run, latent-calibrated, as a checkpoint directory for a DiT",
        description="Measure a trained codec's raw latents on its training scenes and write its EMA weights with "
        "model.shift_factor = mean and model.scaling_factor = 1 / std (and, for the LiDAR AE, the drop threshold "
        "chosen on training sweeps) as a checkpoint directory. See docs/camera.md and docs/lidar.md.",
        epilog=_CALIBRATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    codecs = p.add_subparsers(dest="codec", metavar="CODEC", required=True)
    cam = codecs.add_parser("camera-vae", help="a camera-vae run (latent shift and scale)")
    lid = codecs.add_parser("lidar-ae", help="a lidar-ae run (latent shift and scale, drop threshold)")
    for c, what in ((cam, "camera-vae"), (lid, "lidar-ae")):
        c.add_argument("run", metavar="RUN", type=Path,
                       help=f"{what} run directory (its latest checkpoint) or a checkpoint directory")
        c.add_argument("--data", metavar="ROOT", required=True, type=Path,
                       help="the root the codec was trained on (its training scenes are used)")
        c.add_argument("--out", metavar="DIR", required=True, type=Path,
                       help="checkpoint directory to write (replaced whole if it exists)")
    cam.add_argument("--clips", type=int, default=64, help="clips to measure, evenly spread (default 64)")
    lid.add_argument("--sweeps", type=int, default=64, help="sweeps to measure, evenly spread (default 64)")
    lid.add_argument("--tune-sweeps", type=int, default=16,
                     help="training sweeps the drop threshold is chosen on (default 16; 0 keeps the model's)")
    p.set_defaults(func=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    """Run the calibration of ``args.codec``; print its record as JSON and the written directory."""
    from .calibration import calibrate_camera_vae, calibrate_lidar_ae

    if args.codec == "camera-vae":
        stats = calibrate_camera_vae(args.run, args.data, args.out, clips=args.clips)
    else:
        stats = calibrate_lidar_ae(args.run, args.data, args.out, sweeps=args.sweeps, tune_sweeps=args.tune_sweeps)
    print(json.dumps(stats, indent=1))
    print(f"wrote {args.out}")
    return 0


def resolve_run_config(task: str, preset: str, config_files: list[Path], overrides: list[str]) -> tuple[TaskDef, Any]:
    """Task definition and its run config: preset, then each YAML file, then the --set overrides."""
    task_def = resolve_preset(TASKS, task, kind="task")
    cfg = resolve_preset(task_def.presets, preset, kind=f"{task} preset")
    for path in config_files:
        try:
            cfg = apply_overrides(cfg, load_yaml_overrides(path))
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    return task_def, apply_overrides(cfg, overrides)


def run(args: argparse.Namespace) -> int:
    from .distributed import init_distributed, shutdown_distributed
    from .loop import train

    task_def, cfg = resolve_run_config(args.task, args.preset, list(args.config_files), list(args.overrides))
    if args.print_config:
        sys.stdout.write(yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None))
        return 0
    if args.out is None:
        raise ConfigError("--out RUN_DIR is required to train")
    env = init_distributed(cfg.train.device)
    finished = False
    try:
        task = task_def.build(cfg, args.data)
        info = {"preset": args.preset, "config_files": [str(p) for p in args.config_files],
                "overrides": list(args.overrides), "data_root": str(args.data) if args.data else None,
                "argv": sys.argv}
        train(task, cfg, args.out, task_name=args.task, resume=args.resume, init_from=args.init_from, env=env,
              run_info=info)
        finished = True
    finally:
        shutdown_distributed(synchronize=finished)
    return 0
