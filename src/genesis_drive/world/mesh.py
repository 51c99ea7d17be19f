"""Triangle meshes shared by SynthTown's camera rasteriser and its LiDAR ray caster.

One :class:`TriangleMesh` holds a whole scene (or one object) in the *global* frame, metres, z up.
Per-face attributes carry what both sensors need: albedo colour, instance id (0 = static scenery,
>0 = an annotated object), a material class (for LiDAR intensity and semantic buffers) and an
emissive strength (lamps and headlights at night).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

__all__ = ["Material", "TriangleMesh"]


class Material(IntEnum):
    """Surface classes. LiDAR reflectivity and the semantic buffer are keyed by these."""

    SKY = 0
    ROAD = 1
    LANE_MARKING = 2
    SIDEWALK = 3
    CROSSING = 4
    TERRAIN = 5
    BUILDING = 6
    VEGETATION = 7
    POLE = 8
    VEHICLE_BODY = 9
    VEHICLE_GLASS = 10
    LICENSE_PLATE = 11
    LAMP = 12
    PEDESTRIAN = 13
    CYCLIST = 14
    BARRIER = 15


@dataclass(frozen=True, eq=False)
class TriangleMesh:
    """Indexed triangle mesh with per-face attributes.

    vertices: (N, 3) float32 metres (global frame unless stated otherwise).
    faces: (M, 3) int32 vertex indices, counter-clockwise seen from outside.
    face_color: (M, 3) float32 linear RGB albedo in [0, 1].
    face_instance: (M,) int32; 0 for scenery, else the object's instance id (1-based).
    face_material: (M,) int16 :class:`Material` values.
    face_emissive: (M,) float32 emitted radiance scale (0 = none, 1 = a lit lamp).
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_color: np.ndarray
    face_instance: np.ndarray
    face_material: np.ndarray
    face_emissive: np.ndarray

    def __post_init__(self) -> None:
        v = np.ascontiguousarray(self.vertices, dtype=np.float32)
        f = np.ascontiguousarray(self.faces, dtype=np.int32)
        m = len(f)
        if v.ndim != 2 or v.shape[1] != 3:
            raise ValueError(f"TriangleMesh.vertices must be (N, 3), got {v.shape}")
        if f.ndim != 2 or f.shape[1] != 3 or (m and (f.min() < 0 or f.max() >= len(v))):
            raise ValueError(f"TriangleMesh.faces must be (M, 3) indices into {len(v)} vertices")
        checks = {
            "face_color": (np.float32, (m, 3)),
            "face_instance": (np.int32, (m,)),
            "face_material": (np.int16, (m,)),
            "face_emissive": (np.float32, (m,)),
        }
        object.__setattr__(self, "vertices", v)
        object.__setattr__(self, "faces", f)
        for name, (dtype, shape) in checks.items():
            a = np.ascontiguousarray(getattr(self, name), dtype=dtype)
            if a.shape != shape:
                raise ValueError(f"TriangleMesh.{name} must have shape {shape}, got {a.shape}")
            object.__setattr__(self, name, a)

    @property
    def num_faces(self) -> int:
        return len(self.faces)

    @staticmethod
    def build(vertices, faces, color, material: Material, instance: int = 0, emissive: float = 0.0) -> "TriangleMesh":
        """A mesh whose faces all share one colour (3,), material, instance id and emission."""
        m = len(np.asarray(faces))
        return TriangleMesh(
            vertices=vertices,
            faces=faces,
            face_color=np.tile(np.asarray(color, dtype=np.float32), (m, 1)),
            face_instance=np.full(m, instance, dtype=np.int32),
            face_material=np.full(m, int(material), dtype=np.int16),
            face_emissive=np.full(m, emissive, dtype=np.float32),
        )

    @staticmethod
    def concat(meshes: "list[TriangleMesh]") -> "TriangleMesh":
        """One mesh holding all faces of ``meshes`` (indices re-based)."""
        meshes = [m for m in meshes if m.num_faces]
        if not meshes:
            return TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(0))
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
        return TriangleMesh(
            vertices=np.concatenate([m.vertices for m in meshes]),
            faces=np.concatenate([m.faces + o for m, o in zip(meshes, offsets)]),
            face_color=np.concatenate([m.face_color for m in meshes]),
            face_instance=np.concatenate([m.face_instance for m in meshes]),
            face_material=np.concatenate([m.face_material for m in meshes]),
            face_emissive=np.concatenate([m.face_emissive for m in meshes]),
        )

    def transformed(self, matrix: np.ndarray) -> "TriangleMesh":
        """The mesh with vertices moved by a 4x4 homogeneous transform."""
        m = np.asarray(matrix, dtype=np.float64)
        v = self.vertices.astype(np.float64) @ m[:3, :3].T + m[:3, 3]
        return TriangleMesh(v, self.faces, self.face_color, self.face_instance, self.face_material, self.face_emissive)
