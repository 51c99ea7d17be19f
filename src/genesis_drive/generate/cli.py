"""``genesis-drive generate``: generate a nuScenes-format root's scenes again from their layouts.

For every chosen scene of ``--from ROOT`` the camera DiT generates the six views chunk after chunk
(each chunk continues the last latent frame of the previous one), from the scene's layout and
caption; ``--out OUT`` becomes a nuScenes-format root with the same tokens and annotations whose
camera files are the generated frames (see :mod:`generate.root`). Networks: ``--checkpoints DIR``
(layout in :mod:`generate.checkpoints`), default the shipped ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError, DataError
from .camera import MODES

__all__ = ["add_arguments", "MODES", "check_arguments"]

MODALITIES = ("camera",)

_EPILOG = """\
examples:
  genesis-drive generate --from data/st_heldout --out gen/free --modalities camera --mode free --seed 0
  genesis-drive generate --from data/st_heldout --out gen/ff --modalities camera --mode first-frame --scenes st-1000-0000
  genesis-drive generate --from ROOT --out OUT --modalities camera --mode noisy-latent --strength 0.6 --checkpoints runs/ckpts
"""


def add_arguments(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``generate`` subcommand's parser (its options) to the top-level parser; returns it."""
    p = subparsers.add_parser(
        "generate",
        help="generate the camera views of a nuScenes-format root's scenes from their layouts",
        description=__doc__.splitlines()[0],
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--from", dest="source", metavar="ROOT", type=Path, required=True, help="source nuScenes-format root (layouts, captions)")
    p.add_argument("--out", metavar="OUT", type=Path, required=True, help="generated nuScenes-format root to write")
    p.add_argument("--modalities", nargs="+", default=["camera"], metavar="M", help=f"what to generate: {', '.join(MODALITIES)}")
    p.add_argument("--mode", default="free", metavar="MODE", help=f"{' | '.join(MODES)} (default: free)")
    p.add_argument("--strength", type=float, default=0.6, metavar="S",
                   help="noisy-latent mode: noise level in [0, 1] the real latents start from (1 = pure noise)")
    p.add_argument("--scenes", nargs="+", metavar="NAME", help="scene names to generate (default: every scene)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the DiT config's)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (default: the DiT config's)")
    p.add_argument("--sampler", default="euler", metavar="NAME", help="euler | heun (default: euler)")
    p.add_argument("--checkpoints", metavar="DIR", type=Path, default=None,
                   help="folder with camera_vae/ and camera_dit/ runs (default: the shipped checkpoints)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    return p


def check_arguments(args: argparse.Namespace) -> None:
    """ConfigError / DataError (one line naming the option) for bad option values, before any work."""
    unknown = [m for m in args.modalities if m not in MODALITIES]
    if unknown:
        raise ConfigError(f"--modalities: unknown {unknown}; expected {' | '.join(MODALITIES)}")
    if args.mode not in MODES:
        raise ConfigError(f"--mode: unknown mode {args.mode!r}; expected {' | '.join(MODES)}")
    if not 0.0 <= args.strength <= 1.0:
        raise ConfigError(f"--strength must be in [0, 1], got {args.strength}")
    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {args.steps}")
    if args.sampler not in ("euler", "heun"):
        raise ConfigError(f"--sampler: unknown sampler {args.sampler!r}; expected euler | heun")
    if args.out.exists() and not args.overwrite:
        raise DataError("already exists (pass --overwrite to replace it)", args.out, "--out")
    if args.out.resolve() == args.source.resolve():
        raise DataError("--out must differ from --from", args.out, "--out")
