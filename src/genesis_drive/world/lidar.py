"""Ray casting for SynthTown's LiDAR and visibility checks (open3d ``RaycastingScene``).

One :class:`RayCaster` holds the static scene (built once per town) and the current frame's
dynamic scene (agents); :meth:`RayCaster.cast` returns the nearest hit of each ray across both.
:func:`cast_sweep` fires one LiDAR revolution and returns nuScenes-style points (N, 5):
x, y, z (metres, LIDAR_TOP frame at the sweep's timestamp), intensity (0..255), ring index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.geometry import Pose
from .config import LidarConfig
from .mesh import Material, TriangleMesh
from .sensors import lidar_beam_directions

__all__ = ["REFLECTIVITY", "WEATHER_EFFECTS", "Hits", "RayCaster", "SweepResult", "cast_sweep"]

#: Diffuse reflectivity per material (fraction; intensity = 255 * reflectivity * cos(incidence)).
REFLECTIVITY = np.zeros(max(Material) + 1)
for _m, _r in {
    Material.ROAD: 0.07, Material.LANE_MARKING: 0.45, Material.SIDEWALK: 0.1, Material.CROSSING: 0.45,
    Material.TERRAIN: 0.09, Material.BUILDING: 0.12, Material.VEGETATION: 0.1, Material.POLE: 0.2,
    Material.VEHICLE_BODY: 0.2, Material.VEHICLE_GLASS: 0.04, Material.LICENSE_PLATE: 0.95, Material.LAMP: 0.3,
    Material.PEDESTRIAN: 0.12, Material.CYCLIST: 0.15, Material.BARRIER: 0.55,
}.items():  # fmt: skip
    REFLECTIVITY[_m] = _r

#: weather -> (range scale, extra drop probability, intensity scale).
WEATHER_EFFECTS = {"clear": (1.0, 0.0, 1.0), "rain": (0.85, 0.06, 0.8), "fog": (0.55, 0.12, 0.7)}


@dataclass
class Hits:
    """Nearest hits of N rays. distance: (N,) metres along the unit ray (inf = no hit);
    instance: (N,) int32 face instance (-1 = no hit); material: (N,) int16; cos_incidence: (N,)."""

    distance: np.ndarray
    instance: np.ndarray
    material: np.ndarray
    cos_incidence: np.ndarray


class _Scene:
    def __init__(self, mesh: TriangleMesh, origin: np.ndarray):
        import open3d as o3d  # here, not at the top: importing the world (its lighting, its presets) needs no ray caster

        self.mesh = mesh
        self._tensor = o3d.core.Tensor
        self.scene = o3d.t.geometry.RaycastingScene()
        if mesh.num_faces:
            v = (mesh.vertices.astype(np.float64) - origin).astype(np.float32)
            self.scene.add_triangles(self._tensor(v), self._tensor(mesh.faces.astype(np.uint32)))

    def cast(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.mesh.num_faces:
            n = len(rays)
            return np.full(n, np.inf, np.float32), np.full(n, -1, np.int64), np.zeros((n, 3), np.float32)
        ans = self.scene.cast_rays(self._tensor(rays))
        prim = ans["primitive_ids"].numpy().astype(np.int64)
        t = ans["t_hit"].numpy()
        prim[~np.isfinite(t)] = -1
        return t, prim, ans["primitive_normals"].numpy()


class RayCaster:
    """Nearest-hit ray casting against a static mesh plus a per-frame dynamic mesh (global frame).

    Coordinates are shifted by a scene origin (the static mesh's rounded centre) before the float32
    upload, so global coordinates of hundreds of metres keep sub-millimetre precision.
    """

    def __init__(self, static: TriangleMesh):
        v = static.vertices.astype(np.float64)
        self.origin = np.round((v.min(axis=0) + v.max(axis=0)) / 2.0) if static.num_faces else np.zeros(3)
        self._static = _Scene(static, self.origin)
        self._dynamic = _Scene(TriangleMesh.concat([]), self.origin)

    def set_dynamic(self, mesh: TriangleMesh) -> None:
        """Replace the moving geometry (this frame's agents)."""
        self._dynamic = _Scene(mesh, self.origin)

    def cast(self, origins: np.ndarray, directions: np.ndarray) -> Hits:
        """Nearest hits of rays from ``origins`` (N, 3) along unit ``directions`` (N, 3), global frame."""
        o = np.asarray(origins, np.float64) - self.origin
        d = np.asarray(directions, np.float64)
        rays = np.concatenate([o, d], axis=1).astype(np.float32)
        n = len(rays)
        t_s, p_s, n_s = self._static.cast(rays)
        t_d, p_d, n_d = self._dynamic.cast(rays)
        use_d = t_d < t_s
        dist = np.where(use_d, t_d, t_s).astype(np.float64)
        inst = np.full(n, -1, np.int32)
        mat = np.zeros(n, np.int16)
        for sel, prim, mesh in ((~use_d & (p_s >= 0), p_s, self._static.mesh), (use_d & (p_d >= 0), p_d, self._dynamic.mesh)):
            inst[sel] = mesh.face_instance[prim[sel]]
            mat[sel] = mesh.face_material[prim[sel]]
        normals = np.where(use_d[:, None], n_d, n_s)
        cos_inc = np.abs(np.einsum("nd,nd->n", normals, d))
        dist[inst < 0] = np.inf
        return Hits(dist, inst, mat, cos_inc)


@dataclass
class SweepResult:
    """points: (N, 5) float32 x, y, z, intensity, ring in the LiDAR frame at the sweep timestamp;
    instance: (N,) int32 instance id hit by each point (0 = scenery)."""

    points: np.ndarray
    instance: np.ndarray


def cast_sweep(
    caster: RayCaster,
    cfg: LidarConfig,
    sensor_to_ego: Pose,
    column_ego_to_global: np.ndarray,
    sweep_ego_to_global: Pose,
    rng: np.random.Generator,
    weather: str = "clear",
) -> SweepResult:
    """Fire one LiDAR revolution.

    column_ego_to_global: (A, 4, 4) ego pose when each azimuth column fires (rolling acquisition;
    pass the same pose A times for an instantaneous sweep). Returned points are expressed in the
    LiDAR frame at ``sweep_ego_to_global`` (the sweep's timestamp). Drops: no hit, beyond range,
    and random drop (see :class:`LidarConfig`); range noise is added along the ray.
    """
    dirs_ego, _, ring = lidar_beam_directions(cfg)  # (A, B, 3)
    a, b = dirs_ego.shape[:2]
    m = np.asarray(column_ego_to_global, np.float64)
    if m.shape != (a, 4, 4):
        raise ValueError(f"column_ego_to_global must be ({a}, 4, 4) for {a} azimuth steps, got {m.shape}")
    mount = sensor_to_ego.translation
    origins = np.einsum("aij,j->ai", m[:, :3, :3], mount) + m[:, :3, 3]  # (A, 3)
    dirs = np.einsum("aij,abj->abi", m[:, :3, :3], dirs_ego)  # (A, B, 3)
    o = np.repeat(origins, b, axis=0)
    d = dirs.reshape(-1, 3)
    hits = caster.cast(o, d)
    range_scale, weather_drop, intensity_scale = WEATHER_EFFECTS[weather]
    dist = hits.distance
    ok = np.isfinite(dist) & (dist >= cfg.min_range) & (dist <= cfg.max_range * range_scale)
    u = rng.random(len(d))
    p_drop = cfg.drop_base + weather_drop + cfg.drop_far * (np.minimum(dist, cfg.max_range) / cfg.max_range) ** 2
    p_drop = p_drop + cfg.drop_grazing * (hits.cos_incidence < 0.08) + cfg.drop_glass * (hits.material == Material.VEHICLE_GLASS)
    ok &= u >= p_drop
    noise = rng.standard_normal(len(d)) * cfg.range_noise
    r = np.where(ok, dist + noise, 0.0)
    p_global = o[ok] + d[ok] * r[ok, None]
    sensor_to_global = (sweep_ego_to_global @ sensor_to_ego).inverse().matrix()
    p_sensor = p_global @ sensor_to_global[:3, :3].T + sensor_to_global[:3, 3]
    refl = REFLECTIVITY[hits.material[ok]]
    intensity = np.clip(np.round(255.0 * refl * hits.cos_incidence[ok] * intensity_scale), 0, 255)
    rings = np.tile(ring, a)[ok]
    pts = np.concatenate([p_sensor, intensity[:, None], rings[:, None]], axis=1).astype(np.float32)
    return SweepResult(pts, hits.instance[ok])
