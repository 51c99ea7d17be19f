"""BEV latent -> LiDAR sweep: render the sensor's own beam pattern, drop rays by the ray-drop head,
write the points as a nuScenes ``.pcd.bin``.

Frames: the latent's BEV grid frame is the LIDAR_TOP sensor frame of the sweep it encodes
(nuScenes: x right, y forward, z up, metres). By default the sensor sits at the grid origin
``(0, 0, 0)``; ``origins`` (b 3, metres in the grid frame) move it (a translation only: the
sensor's axes stay those of the grid), and the points are then returned relative to the moved
sensor, i.e. in its own sensor frame.

Beams: every (ring, azimuth bin) cell of a :class:`~.beams.BeamModel`, ring-major (beam
``k * A + a`` is ring ``k``, bin ``a``), along :meth:`~.beams.BeamModel.directions`. A beam
renders an expected depth ``D`` (metres) and a drop probability (the drop head's sigmoid,
:meth:`~.ae.LidarAE.render`); it gives the point ``D d`` when it crosses the grid volume within
``[near, far]`` (``valid``) and its drop probability is at most ``drop_threshold``, and nothing
otherwise. A beam that meets no surface renders the far bound of the grid and is kept unless the
drop head drops it (it is trained to: such beams give no return in the data).

Points are ``(n, 5)`` float32 ``[x, y, z, intensity, ring]`` as in nuScenes LIDAR_TOP files. The
autoencoder has no intensity head, so **intensity is 0** for every decoded point; ``ring`` is the
beam's ring index (0 = the first elevation of the beam model) as a float.

Rendering runs in fp32 even inside an autocast region (bf16 would round 50 m depths to ~0.25 m),
without gradients. ``baked`` (a :class:`~.bake.BakeConfig`; None = the exact renderer) renders
from the plane's density baked on a lattice (:mod:`.bake`): approximate; faster for the tiny
preset (bake included ~1.4-1.9x on one thread), slower for the paper preset (its bake costs more
than one exact sweep). ``marched`` (a :class:`~.march.MarchConfig`) renders the same baked volume
(``baked``, or :data:`MARCH_BAKE` when None: a sparse bake of 32 heights) by the compiled
early-terminating ray marcher of :mod:`.march` (CPU only).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ...data.atomic import atomic_write_bytes
from ...data.nuscenes import read_lidar_points
from ...errors import DataError
from .ae import LidarAE
from .bake import BakeConfig, bake_density, render_baked
from .beams import BeamModel
from .march import MarchConfig, render_marched

__all__ = [
    "BeamRender",
    "MARCH_BAKE",
    "POINT_DIMS",
    "beam_rays",
    "decode_sweep",
    "read_pcd_bin",
    "reconstruct_beams",
    "reconstruct_sweep",
    "render_beams",
    "write_pcd_bin",
]

#: The bake of the ray marcher when none is given: 32 heights, nodes evaluated only near voxels of
#: occupancy probability above 0.01 (:class:`~.bake.BakeConfig`). Chosen on the validation root
#: st_val (docs/lidar.md, "Compiled ray marcher"): Chamfer as the dense bake's, ~1/6 of the nodes.
MARCH_BAKE = BakeConfig(z_samples=32, occupancy_threshold=0.01)

#: Values per point of a nuScenes LIDAR_TOP ``.pcd.bin``: x, y, z, intensity, ring (float32 each).
POINT_DIMS = 5

#: Reads a ``.pcd.bin`` (float32 x 5 per point) into ``(n, 5)`` float32; the project's nuScenes reader.
read_pcd_bin = read_lidar_points


def beam_rays(beams: BeamModel) -> tuple[torch.Tensor, torch.Tensor]:
    """The beam grid of ``beams`` in the sensor frame: unit directions ``(n, 3)`` float32 and ring
    indices ``(n,)`` long, ``n = rings * azimuth_bins``, ring-major (beam ``k * A + a``)."""
    ring = torch.arange(beams.rings, dtype=torch.long).repeat_interleave(beams.azimuth_bins)
    return beams.directions(), ring


class BeamRender(NamedTuple):
    """Every beam of a beam model rendered for ``b`` sweeps: ``depth`` (b n) metres along the beam,
    ``drop`` (b n) drop probability, ``valid`` (b n) the beam crosses the grid within
    ``[near, far]``, ``dirs`` (n 3) unit directions and ``ring`` (n,) long ring indices in the
    sensor frame (ring-major beam order, :func:`beam_rays`)."""

    depth: torch.Tensor
    drop: torch.Tensor
    valid: torch.Tensor
    dirs: torch.Tensor
    ring: torch.Tensor

    def kept(self, drop_threshold: float) -> torch.Tensor:
        """(b n) bool: valid beams whose drop probability is at most ``drop_threshold``."""
        return self.valid & (self.drop <= drop_threshold)

    def points(self, drop_threshold: float) -> list[torch.Tensor]:
        """Per sweep the kept beams' points ``(n_i, 5)`` float32 ``[x, y, z, 0, ring]`` (sensor
        frame, metres), in beam order."""
        keep = self.kept(drop_threshold)
        out = []
        for i in range(self.depth.shape[0]):
            k = keep[i]
            xyz = self.dirs[k] * self.depth[i, k, None]
            extra = torch.stack((torch.zeros_like(xyz[:, 0]), self.ring[k].to(xyz)), dim=-1)
            out.append(torch.cat((xyz, extra), dim=-1).float())
        return out


def _origins(origins: torch.Tensor | None, b: int, device: torch.device) -> torch.Tensor:
    if origins is None:
        return torch.zeros(b, 3, device=device)
    if origins.shape != (b, 3):
        raise ValueError(f"origins are one sensor position (x, y, z) metres per sweep, shape ({b}, 3); got {tuple(origins.shape)}")
    return origins.to(device=device, dtype=torch.float32)


@torch.no_grad()
def render_beams(model: LidarAE, plane: torch.Tensor, beams: BeamModel, *, origins: torch.Tensor | None = None,
                 chunk: int = 4096, baked: BakeConfig | None = None, marched: MarchConfig | None = None) -> BeamRender:
    """Render every beam of ``beams`` from a decoded feature plane (b p h w; :meth:`LidarAE.decode`)
    with the sensor at ``origins`` (b 3 metres, grid frame; None = the grid origin), ``chunk``
    rays at a time, in fp32; with ``baked`` by the baked renderer of :mod:`.bake` (its own chunk);
    with ``marched`` by the ray marcher of :mod:`.march` on the volume baked by ``baked`` (None:
    :data:`MARCH_BAKE`)."""
    with torch.autocast(plane.device.type, enabled=False):
        plane = plane.float()
        b = plane.shape[0]
        dirs, ring = beam_rays(beams)
        dirs, ring = dirs.to(plane.device), ring.to(plane.device)
        d = dirs[None].expand(b, -1, -1).contiguous()
        o = _origins(origins, b, plane.device)[:, None].expand_as(d).contiguous()
        if marched is not None:
            bake = MARCH_BAKE if baked is None else baked
            out = render_marched(model, plane, bake_density(model, plane, bake), o, d, marched)
        elif baked is None:
            out = model.render(plane, o, d, chunk=chunk)
        else:
            out = render_baked(model, plane, bake_density(model, plane, baked), o, d, baked)
    return BeamRender(out.depth, torch.sigmoid(out.drop_logit), out.valid, dirs, ring)


@torch.no_grad()
def decode_sweep(model: LidarAE, latents: torch.Tensor, beams: BeamModel, *, drop_threshold: float | None = None,
                 chunk: int = 4096, origins: torch.Tensor | None = None,
                 baked: BakeConfig | None = None, marched: MarchConfig | None = None) -> list[torch.Tensor]:
    """Normalised latents (b c h' w') -> one sweep per latent: ``(n_i, 5)`` float32 points
    ``[x, y, z, intensity = 0, ring]`` in the sensor frame (see the module doc), the beams of
    ``beams`` whose drop probability exceeds ``drop_threshold`` (None: the model's calibrated
    ``cfg.drop_threshold``) or that miss the grid removed.
    ``origins`` (b 3, metres, grid frame) places the sensor (None = the grid origin); ``baked``
    selects the baked renderer, ``marched`` the ray marcher (:func:`render_beams`)."""
    with torch.autocast(latents.device.type, enabled=False):
        plane = model.decode(latents.float())
    thr = model.cfg.drop_threshold if drop_threshold is None else drop_threshold
    return render_beams(model, plane, beams, origins=origins, chunk=chunk, baked=baked,
                        marched=marched).points(thr)


@torch.no_grad()
def reconstruct_beams(model: LidarAE, occupancy: torch.Tensor, beams: BeamModel, *, origins: torch.Tensor | None = None,
                      chunk: int = 4096, baked: BakeConfig | None = None,
                      marched: MarchConfig | None = None) -> tuple[BeamRender, torch.Tensor]:
    """Occupancy grids (b z h w) -> posterior-mean raw latents (b c h' w') -> every beam rendered
    (fp32; ``baked`` / ``marched`` as in :func:`render_beams`). Returns ``(render, raw latents)``."""
    with torch.autocast(occupancy.device.type, enabled=False):
        z = model.encode_raw(occupancy.float())
        plane = model.decode_raw(z)
    return render_beams(model, plane, beams, origins=origins, chunk=chunk, baked=baked, marched=marched), z


def reconstruct_sweep(model: LidarAE, occupancy: torch.Tensor, beams: BeamModel, *, drop_threshold: float | None = None,
                      chunk: int = 4096, origins: torch.Tensor | None = None, baked: BakeConfig | None = None,
                      marched: MarchConfig | None = None) -> list[torch.Tensor]:
    """Occupancy grids (b z h w) -> their reconstructed sweeps through the posterior mean: as
    :func:`decode_sweep` of the encoded latents."""
    render, _ = reconstruct_beams(model, occupancy, beams, origins=origins, chunk=chunk, baked=baked, marched=marched)
    return render.points(model.cfg.drop_threshold if drop_threshold is None else drop_threshold)


def write_pcd_bin(path: str | Path, points: torch.Tensor | np.ndarray) -> Path:
    """Write ``points`` (n, 5) ``[x, y, z, intensity, ring]`` as a nuScenes LIDAR_TOP ``.pcd.bin``:
    little-endian float32, 5 values per point, no header; atomically (temporary sibling, then
    rename). Returns ``path``. DataError for another shape or non-finite values."""
    arr = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] != POINT_DIMS:
        raise DataError(f"sweep points must be (n, {POINT_DIMS}) x, y, z, intensity, ring; got {arr.shape}", path)
    if not np.isfinite(arr).all():
        raise DataError("sweep points must be finite", path)
    return atomic_write_bytes(path, np.ascontiguousarray(arr, dtype="<f4").tobytes())
