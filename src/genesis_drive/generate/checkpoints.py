"""Where `genesis-drive generate` finds its networks, and loading them checked against each other.

A checkpoints folder ``DIR`` holds one folder per network, each a training run directory (its newest
complete checkpoint is used) or one checkpoint directory (``state.json`` + safetensors), exactly as
``genesis-drive train`` writes them and :func:`genesis_drive.train.checkpoint.load_run_model` reads them::

    DIR/camera_vae/     a `genesis-drive train camera-vae ... --out DIR/camera_vae` run (VideoVAE)
    DIR/camera_dit/     a `genesis-drive train camera-dit ... --out DIR/camera_dit` run (MultiViewDiT)
    DIR/lidar_ae/       a (calibrated) `genesis-drive train lidar-ae` checkpoint (LidarAE)
    DIR/lidar_dit/      a `genesis-drive train lidar-dit ... --out DIR/lidar_dit` run (LidarDiT; its camera
                        features come from DIR/camera_vae)

With no ``--checkpoints`` the shipped ones are used: :data:`SHIPPED_CHECKPOINTS`
(``src/genesis_drive/assets/checkpoints/``). :func:`load_camera_networks` loads both (EMA weights
when the checkpoint has them) and refuses, with a DataError naming the folder and field, a
checkpoint of another task, a corrupt or truncated file, or a VAE whose latent channels / spatial /
temporal factors are not the ones the DiT was built for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DataError
from ..models.camera.dit import MultiViewDiT
from ..models.camera.vae import VideoVAE
from ..train.checkpoint import find_checkpoint, load_run_model, read_state
from ..train.tasks.camera_dit import CameraDiTConfig
from ..train.tasks.camera_vae import CameraVAEConfig

__all__ = ["SHIPPED_CHECKPOINTS", "NETWORKS", "TASK_OF", "CameraNetworks", "check_task", "checkpoint_dirs", "checkpoint_of",
           "missing_hint", "load_camera_networks"]

#: The checkpoints shipped with the package (tiny VAE + DiT trained on SynthTown).
SHIPPED_CHECKPOINTS = Path(__file__).resolve().parent.parent / "assets" / "checkpoints"

#: Network folder names per modality.
NETWORKS = {"camera": ("camera_vae", "camera_dit"), "lidar": ("camera_vae", "lidar_ae", "lidar_dit")}

#: The training task (``state.json`` key ``task``) each network folder must come from.
TASK_OF = {"camera_vae": "camera-vae", "camera_dit": "camera-dit", "lidar_ae": "lidar-ae", "lidar_dit": "lidar-dit"}


def missing_hint(base: Path | None, modality: str = "camera") -> str:
    """What a checkpoints folder must hold and the commands that make it (``base`` None: a new folder CKPT)."""
    d = "CKPT" if base is None else str(base)
    if modality == "lidar":
        hint = (f"train them with `genesis-drive train lidar-ae --preset tiny --data ROOT --out RUNS/lidar-ae`, "
                f"`genesis-drive calibrate lidar-ae RUNS/lidar-ae --data ROOT --out {d}/lidar_ae` and "
                f"`genesis-drive train lidar-dit --preset tiny --data ROOT --out {d}/lidar_dit --set ae={d}/lidar_ae "
                f"vae={d}/camera_vae` (docs/lidar.md)")  # fmt: skip
    else:
        hint = (f"train them with `genesis-drive train camera-vae --preset tiny --data ROOT --out RUNS/camera-vae`, "
                f"`genesis-drive calibrate camera-vae RUNS/camera-vae --data ROOT --out {d}/camera_vae` and "
                f"`genesis-drive train camera-dit --preset tiny --data ROOT --out {d}/camera_dit --set vae={d}/camera_vae` "
                "(docs/camera.md)")  # fmt: skip
    return hint + (", then pass --checkpoints CKPT" if base is None else "")


def _is_checkpoint(path: Path) -> bool:
    return (path / "state.json").is_file() or any((path / "checkpoints").glob("step_*/state.json"))


def checkpoint_dirs(root: str | Path | None, modality: str = "camera") -> dict[str, Path]:
    """``{network: folder}`` of ``modality`` under ``root`` (None: the shipped checkpoints).

    DataError naming the folder (and the files to provide / the train commands that make them) when
    a network's folder is missing or holds no checkpoint.
    """
    if modality not in NETWORKS:
        raise DataError(f"unknown modality {modality!r}; expected one of {sorted(NETWORKS)}", root, "modalities")
    shipped = root is None
    base = SHIPPED_CHECKPOINTS if shipped else Path(root)
    if shipped and not all((base / n).is_dir() for n in NETWORKS[modality]):
        raise DataError(f"the shipped checkpoints are not installed (expected {' and '.join(n + '/' for n in NETWORKS[modality])} "
                        f"here); {missing_hint(None, modality)}", base, "--checkpoints")  # fmt: skip
    if not base.is_dir():
        raise DataError(f"checkpoints folder not found (expected {' and '.join(n + '/' for n in NETWORKS[modality])} in it); "
                        f"{missing_hint(base, modality)}", base, "--checkpoints")  # fmt: skip
    out = {}
    for name in NETWORKS[modality]:
        path = base / name
        if not path.is_dir():
            raise DataError(f"no {name}/ folder; {missing_hint(base, modality)}", base, "--checkpoints")
        if not _is_checkpoint(path):
            raise DataError("holds no checkpoint (expected state.json or checkpoints/step_*/state.json, "
                            f"as `genesis-drive train {TASK_OF[name]} --out {path}` writes)", path, "--checkpoints")  # fmt: skip
        out[name] = path
    return out


@dataclass(frozen=True)
class CameraNetworks:
    """The camera branch's networks for sampling (eval mode, on ``device``): the DiT with its run
    config (views, image size, clip length, condition transform, time shift) and the VAE with its
    own; ``info`` per network (checkpoint path, step, task, weights SHA-256, as ``load_run_model``)."""

    dit: MultiViewDiT
    vae: VideoVAE
    dit_config: CameraDiTConfig
    vae_config: CameraVAEConfig
    info: dict[str, dict]


def checkpoint_of(path: Path) -> Path:
    """The newest complete checkpoint of run folder ``path``; DataError (``--checkpoints``) when none."""
    ckpt = find_checkpoint(path)
    if ckpt is None:
        raise DataError("no complete checkpoint (expected state.json or checkpoints/step_*/state.json)", path, "--checkpoints")
    return ckpt


def check_task(path: Path, expected: str) -> None:
    """DataError unless the checkpoint in network folder ``path`` was written by task ``expected``
    (checked for every folder before any network loads)."""
    ckpt = checkpoint_of(path)
    task = read_state(ckpt).get("task")  # DataError on a corrupt state.json or truncated files
    if task != expected:
        raise DataError(f"is a checkpoint of task {task!r}, expected {expected!r} (the folder name says which network it must be)",
                        ckpt / "state.json", "task")  # fmt: skip


def _check_vae_version(dit_dir: Path, vae_dir: Path, vae: VideoVAE) -> None:
    """DataError when the DiT checkpoint records the version of the VAE it was trained with
    (``state.json`` ``frozen.vae``, written by the training loop) and ``vae`` is another one."""
    want = (read_state(checkpoint_of(dit_dir)).get("frozen") or {}).get("vae")
    if want is not None and want != vae.version:
        raise DataError(f"is not the VAE the DiT was trained with (its weights are {vae.version}, the DiT at {dit_dir} "
                        f"records {want}): use the camera-vae checkpoint of the DiT run's `vae=`", vae_dir, "frozen.vae")  # fmt: skip


def load_camera_networks(dirs: dict[str, Path], device: str | torch.device = "cpu") -> CameraNetworks:
    """Load ``dirs["camera_vae"]`` and ``dirs["camera_dit"]`` (:func:`checkpoint_dirs`) onto ``device``,
    checked: the right task in each, readable weights that fit the recorded config, and a VAE whose
    (latent channels, spatial factor, temporal factor) are the DiT's."""
    for name in NETWORKS["camera"]:
        check_task(dirs[name], TASK_OF[name])
    vae, vae_cfg, vae_info = load_run_model(dirs["camera_vae"], CameraVAEConfig, lambda c: VideoVAE(c.model), task=TASK_OF["camera_vae"])
    dit, dit_cfg, dit_info = load_run_model(dirs["camera_dit"], CameraDiTConfig, lambda c: MultiViewDiT(c.model), task=TASK_OF["camera_dit"])
    m = dit_cfg.model
    got = (vae_cfg.model.latent_channels, vae.spatial_factor, vae.temporal_factor)
    want = (m.latent_channels, m.spatial_compression, m.conditions.temporal_compression)
    if got != want:
        raise DataError(f"the VAE has (latent channels, spatial, temporal factor) {got} but the DiT at {dirs['camera_dit']} "
                        f"was built for {want}: use the camera-vae run the DiT was trained on", dirs["camera_vae"], "model.latent_channels")  # fmt: skip
    _check_vae_version(dirs["camera_dit"], dirs["camera_vae"], vae)
    device = torch.device(device)
    return CameraNetworks(dit.to(device).eval(), vae.to(device).eval(), dit_cfg, vae_cfg, {"camera_vae": vae_info, "camera_dit": dit_info})
