"""Where `genesis-drive generate` finds its networks: the checkpoint-folder layout.

A checkpoints folder ``DIR`` holds one folder per network, each a training run directory (its newest
complete checkpoint is used) or one checkpoint directory (``state.json`` + safetensors), as the
training loop writes them and :func:`genesis_drive.train.checkpoint.load_run_model` reads them::

    DIR/camera_vae/     the `camera-vae` run (VideoVAE)
    DIR/camera_dit/     the `camera-dit` run (MultiViewDiT)

With no ``--checkpoints`` the shipped ones are used: :data:`SHIPPED_CHECKPOINTS`
(``src/genesis_drive/assets/checkpoints/``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError

__all__ = ["SHIPPED_CHECKPOINTS", "NETWORKS", "checkpoint_dirs"]

#: The checkpoints shipped with the package (tiny VAE + DiT trained on SynthTown).
SHIPPED_CHECKPOINTS = Path(__file__).resolve().parent.parent / "assets" / "checkpoints"

#: Network folder names per modality.
NETWORKS = {"camera": ("camera_vae", "camera_dit")}


def _is_checkpoint(path: Path) -> bool:
    return (path / "state.json").is_file() or any((path / "checkpoints").glob("step_*/state.json"))


def checkpoint_dirs(root: str | Path | None, modality: str = "camera") -> dict[str, Path]:
    """``{network: folder}`` of ``modality`` under ``root`` (None: the shipped checkpoints).

    DataError naming the folder when a network's folder is missing or holds no checkpoint.
    """
    if modality not in NETWORKS:
        raise DataError(f"unknown modality {modality!r}; expected one of {sorted(NETWORKS)}", root, "modalities")
    shipped = root is None
    base = SHIPPED_CHECKPOINTS if shipped else Path(root)
    hint = (
        "the shipped checkpoints are not installed: put a camera_vae/ and a camera_dit/ run directory there, "
        "or pass --checkpoints DIR"
        if shipped
        else "expected DIR/camera_vae/ and DIR/camera_dit/ (training run directories or checkpoint directories)"
    )
    if not base.is_dir():
        raise DataError(f"checkpoints folder not found ({hint})", base, "--checkpoints")
    out = {}
    for name in NETWORKS[modality]:
        path = base / name
        if not path.is_dir():
            raise DataError(f"no {name}/ folder ({hint})", base, "--checkpoints")
        if not _is_checkpoint(path):
            raise DataError("holds no checkpoint (expected state.json or checkpoints/step_*/state.json)", path, "--checkpoints")
        out[name] = path
    return out
