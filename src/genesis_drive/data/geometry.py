"""Rigid transforms, quaternions and pinhole projection.

Conventions (the nuScenes ones, used everywhere in genesis-drive):

* Quaternions are ``(w, x, y, z)`` float64 arrays, unit norm, Hamilton convention.
* A ``Pose`` maps points *from* a child frame *to* a parent frame:
  ``p_parent = R @ p_child + t``. ``sensor_to_ego`` and ``ego_to_global`` are poses.
* Ego frame: x forward, y left, z up, origin at the rear-axle centre on the ground (metres).
* Camera frame: x right, y down, z forward (optical axis), metres.
* LiDAR frame: as calibrated (nuScenes LIDAR_TOP: x right, y forward, z up).
* Global frame: the map frame of the scene's location, metres, z up.
* Yaw is a rotation about +z in radians, counter-clockwise seen from above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Pose",
    "quat_from_yaw",
    "quat_from_matrix",
    "quat_multiply",
    "quat_to_matrix",
    "yaw_from_quat",
    "transform_points",
    "project_points",
    "scale_intrinsics",
    "crop_intrinsics",
    "interpolate_pose",
    "slerp",
]


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) of a unit quaternion ``(w, x, y, z)``."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def quat_from_matrix(m: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(w, x, y, z)`` with ``w >= 0`` of a rotation matrix (3, 3)."""
    m = np.asarray(m, dtype=np.float64)
    tr = np.trace(m)
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def quat_from_yaw(yaw: float) -> np.ndarray:
    """Quaternion of a rotation of ``yaw`` radians about +z."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def yaw_from_quat(q: np.ndarray) -> float:
    """Heading (radians, about +z) of the rotated x axis of quaternion ``q``."""
    m = quat_to_matrix(q)
    return float(np.arctan2(m[1, 0], m[0, 0]))


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` (apply ``b`` first, then ``a``)."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ]
    )


def slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    """Spherical linear interpolation between unit quaternions, ``a`` in [0, 1]."""
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    dot = float(np.dot(q0, q1))
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + a * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    q = (np.sin((1 - a) * theta) * q0 + np.sin(a * theta) * q1) / np.sin(theta)
    return q / np.linalg.norm(q)


@dataclass(frozen=True)
class Pose:
    """A rigid transform child -> parent: ``p_parent = R(rotation) @ p_child + translation``.

    ``rotation`` is a unit quaternion ``(w, x, y, z)``; ``translation`` is in metres.
    """

    rotation: np.ndarray
    translation: np.ndarray

    def __post_init__(self) -> None:
        r = np.asarray(self.rotation, dtype=np.float64).reshape(-1)
        t = np.asarray(self.translation, dtype=np.float64).reshape(-1)
        if r.shape != (4,) or not np.all(np.isfinite(r)) or abs(np.linalg.norm(r) - 1) > 1e-3:
            raise ValueError(f"Pose.rotation must be a unit quaternion (w, x, y, z), got {self.rotation!r}")
        if t.shape != (3,) or not np.all(np.isfinite(t)):
            raise ValueError(f"Pose.translation must be 3 finite numbers (metres), got {self.translation!r}")
        object.__setattr__(self, "rotation", r / np.linalg.norm(r))
        object.__setattr__(self, "translation", t)

    @staticmethod
    def identity() -> "Pose":
        return Pose(np.array([1.0, 0, 0, 0]), np.zeros(3))

    @staticmethod
    def from_matrix(m: np.ndarray) -> "Pose":
        """Pose of a 4x4 homogeneous matrix."""
        m = np.asarray(m, dtype=np.float64)
        return Pose(quat_from_matrix(m[:3, :3]), m[:3, 3])

    @staticmethod
    def from_xy_yaw(x: float, y: float, yaw: float, z: float = 0.0) -> "Pose":
        return Pose(quat_from_yaw(yaw), np.array([x, y, z], dtype=np.float64))

    @property
    def rotation_matrix(self) -> np.ndarray:
        return quat_to_matrix(self.rotation)

    @property
    def yaw(self) -> float:
        return yaw_from_quat(self.rotation)

    def matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix child -> parent."""
        m = np.eye(4)
        m[:3, :3] = self.rotation_matrix
        m[:3, 3] = self.translation
        return m

    def inverse(self) -> "Pose":
        r = self.rotation_matrix.T
        q = self.rotation * np.array([1, -1, -1, -1])
        return Pose(q, -r @ self.translation)

    def __matmul__(self, other: "Pose") -> "Pose":
        """Composition: ``(a @ b)`` maps b's child frame into a's parent frame."""
        return Pose(quat_multiply(self.rotation, other.rotation), self.rotation_matrix @ other.translation + self.translation)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform points (..., 3) from the child to the parent frame."""
        return transform_points(self.matrix(), points)

    def to_dict(self) -> dict:
        return {"rotation": self.rotation.tolist(), "translation": self.translation.tolist()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pose):
            return NotImplemented
        return bool(np.allclose(self.matrix(), other.matrix(), atol=1e-9))

    __hash__ = None  # type: ignore[assignment]


def interpolate_pose(p0: Pose, p1: Pose, a: float) -> Pose:
    """Pose at fraction ``a`` in [0, 1] between ``p0`` and ``p1`` (lerp translation, slerp rotation)."""
    return Pose(slerp(p0.rotation, p1.rotation, a), (1 - a) * p0.translation + a * p1.translation)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 homogeneous transform to points (..., 3); returns (..., 3) float64."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:3, :3].T + matrix[:3, 3]


def project_points(points_cam: np.ndarray, intrinsics: np.ndarray, min_depth: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of camera-frame points (N, 3) in metres.

    Returns ``(uv, valid)``: pixel coordinates (N, 2) (u right, v down; pixel centres at integer
    + 0.5 in the convention ``u = fx * x / z + cx``) and a mask of points in front of the camera
    (depth > ``min_depth``). Points behind the camera get NaN pixels.
    """
    pts = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
    z = pts[:, 2]
    valid = z > min_depth
    uvw = pts @ np.asarray(intrinsics, dtype=np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = uvw[:, :2] / uvw[:, 2:3]
    uv[~valid] = np.nan
    return uv, valid


def scale_intrinsics(intrinsics: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Intrinsics after resizing an image by factors ``sx`` (width) and ``sy`` (height)."""
    k = np.array(intrinsics, dtype=np.float64)
    k[0] *= sx
    k[1] *= sy
    return k


def crop_intrinsics(intrinsics: np.ndarray, left: float, top: float) -> np.ndarray:
    """Intrinsics after cropping ``left`` pixels from the left and ``top`` from the top."""
    k = np.array(intrinsics, dtype=np.float64)
    k[0, 2] -= left
    k[1, 2] -= top
    return k
