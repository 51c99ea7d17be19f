"""``genesis-drive scene``: scene files (from-root, validate, render)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError

__all__ = ["register"]


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels (e.g. 400x224), got {text!r}") from None
    return w, h


def register(subparsers) -> None:
    """Add the ``scene`` subcommand and its ``from-root``, ``validate`` and ``render`` actions."""
    p = subparsers.add_parser("scene", help="scene files: start one from a real sample, check one, render one",
                              description="Scene files (docs/scene_files.md): YAML/JSON layouts of a map, agents, pedestrians, "
                                          "ego path and caption.")  # fmt: skip
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    f = sub.add_parser("from-root", help="write the scene of a nuScenes-format sample as a scene file")
    f.add_argument("root", help="nuScenes-format dataset root")
    f.add_argument("--sample", required=True, help="sample token the scene starts at (t = 0)")
    f.add_argument("--out", required=True, help="scene file to write (.yaml, .yml or .json)")
    f.add_argument("--seconds", type=float, help="at most this many seconds (default: to the end of the nuScenes scene)")
    f.add_argument("--version", help="table version folder (default: the only one)")
    f.add_argument("--overwrite", action="store_true", help="replace an existing file")
    f.set_defaults(func=_from_root)

    v = sub.add_parser("validate", help="check a scene file (schema, categories, ranges, length)")
    v.add_argument("file", help="scene file (.yaml, .yml or .json)")
    v.add_argument("--max-seconds", type=float, help="longest scene the models generate without rollout")
    v.set_defaults(func=_validate)

    r = sub.add_parser("render", help="render a scene file with SynthTown into a nuScenes-format root")
    r.add_argument("file", help="scene file (.yaml, .yml or .json); its map must be a SynthTown town")
    r.add_argument("--out", required=True, help="dataset root to create")
    r.add_argument("--image-size", type=_size, metavar="WxH", help="camera image size (default: the town preset's)")
    r.add_argument("--max-seconds", type=float, help="refuse scenes longer than this")
    r.add_argument("--no-buffers", action="store_true", help="do not keep depth/instance/material buffers")
    r.add_argument("--overwrite", action="store_true", help="replace an existing root")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_render)


def _from_root(args) -> int:
    from .from_root import from_root
    from .io import save_scene

    if Path(args.out).exists() and not args.overwrite:
        raise ConfigError(f"{args.out}: already exists (pass --overwrite to replace it)")
    scene = from_root(args.root, args.sample, seconds=args.seconds, version=args.version)
    save_scene(scene, args.out)
    print(f"wrote {args.out}: {scene.duration:g} s, {len(scene.agents)} agents, {len(scene.pedestrians)} pedestrians, "
          f"{len(scene.ego)} ego poses, map: {'town' if hasattr(scene.map, 'seed') else 'explicit layers'}")  # fmt: skip
    return 0


def _validate(args) -> int:
    from .io import load_scene
    from .schema import TownMap
    from .to_root import check_town_range

    scene = load_scene(args.file, max_seconds=args.max_seconds)
    if isinstance(scene.map, TownMap):
        try:
            check_town_range(scene)
        except ConfigError as e:
            raise ConfigError(f"{args.file}: {e}") from None
    print(f"{args.file}: valid ({scene.duration:g} s, {len(scene.agents)} agents, {len(scene.pedestrians)} pedestrians)")
    return 0


def _render(args) -> int:
    from .io import load_scene
    from .to_root import to_root

    scene = load_scene(args.file, max_seconds=args.max_seconds)
    try:
        stats = to_root(scene, args.out, overwrite=args.overwrite, image_size=args.image_size, write_buffers=not args.no_buffers, progress=not args.quiet)
    except ConfigError as e:
        raise ConfigError(f"{args.file}: {e}") from None
    print(f"wrote {args.out}: {stats.camera_frames} camera frames x 6 views, {stats.sweeps} LiDAR sweeps, {stats.keyframes} keyframes, {stats.seconds:.1f} s")
    return 0
