"""Pedestrian bodies: animated 17-keypoint COCO skeletons and meshes that follow them.

Person frame: x forward (walking direction), y left, z up, metres, origin on the ground under the
body centre. Keypoints are in :data:`genesis_drive.data.schema.COCO_KEYPOINTS` order. Limbs are
boxes between keypoints; the head is an ellipsoid; the torso a box from hips to shoulders.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .mesh import Material, TriangleMesh
from .primitives import beams, icosphere

__all__ = ["Body", "body_mesh", "box_size", "cycling_pose", "random_body", "standing_pose", "walking_pose"]

(NOSE, LEYE, REYE, LEAR, REAR, LSH, RSH, LELB, RELB, LWRI, RWRI, LHIP, RHIP, LKNE, RKNE, LANK, RANK) = range(17)

SHIRTS = ((0.7, 0.1, 0.1), (0.1, 0.2, 0.55), (0.85, 0.85, 0.8), (0.08, 0.08, 0.08), (0.2, 0.45, 0.25), (0.85, 0.6, 0.1), (0.45, 0.45, 0.5), (0.55, 0.3, 0.55))
PANTS = ((0.1, 0.12, 0.25), (0.08, 0.08, 0.08), (0.4, 0.35, 0.25), (0.3, 0.3, 0.32), (0.2, 0.25, 0.45))
SKINS = ((0.95, 0.78, 0.65), (0.8, 0.6, 0.45), (0.55, 0.38, 0.26), (0.35, 0.23, 0.15))
HAIR = ((0.05, 0.04, 0.03), (0.3, 0.2, 0.1), (0.6, 0.5, 0.3), (0.5, 0.5, 0.5))


@dataclass(frozen=True)
class Body:
    """A person's build and clothing. height: metres (top of head); colours: linear RGB."""

    height: float
    shirt: tuple[float, float, float]
    pants: tuple[float, float, float]
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    shoulder: float = 1.0  # shoulder-width scale

    @property
    def s(self) -> float:
        return self.height / 1.75


def random_body(rng: np.random.Generator, child: bool = False) -> Body:
    h = float(rng.uniform(1.05, 1.4) if child else rng.normal(1.72, 0.08))
    pick = lambda pal: tuple(float(c) for c in np.clip(np.array(pal[rng.integers(len(pal))]) * rng.uniform(0.85, 1.15), 0, 1))
    return Body(float(np.clip(h, 1.0, 2.0)), pick(SHIRTS), pick(PANTS), pick(SKINS), pick(HAIR), float(rng.uniform(0.9, 1.1)))


def _head_and_shoulders(kp: np.ndarray, neck: np.ndarray, s: float, shoulder: float, forward: np.ndarray) -> None:
    """Fill face and shoulder keypoints from the neck position (person frame)."""
    up = np.array([0.0, 0.0, 1.0])
    left = np.cross(up, forward)
    kp[LSH] = neck + left * 0.19 * s * shoulder
    kp[RSH] = neck - left * 0.19 * s * shoulder
    head = neck + up * 0.17 * s + forward * 0.01 * s
    kp[NOSE] = head + forward * 0.1 * s - up * 0.01 * s
    kp[LEYE] = head + forward * 0.085 * s + left * 0.032 * s + up * 0.025 * s
    kp[REYE] = head + forward * 0.085 * s - left * 0.032 * s + up * 0.025 * s
    kp[LEAR] = head + left * 0.075 * s
    kp[REAR] = head - left * 0.075 * s


def _two_link(root: np.ndarray, target: np.ndarray, a: float, b: float, bend: np.ndarray) -> np.ndarray:
    """Middle joint of a two-link chain from ``root`` to ``target`` (lengths a, b), bending toward ``bend``."""
    d = target - root
    dist = float(np.clip(np.linalg.norm(d), abs(a - b) + 1e-3, a + b - 1e-3))
    u = d / max(np.linalg.norm(d), 1e-9)
    v = bend - np.dot(bend, u) * u
    v /= max(np.linalg.norm(v), 1e-9)
    cos_t = (a * a + dist * dist - b * b) / (2 * a * dist)
    t = np.arccos(np.clip(cos_t, -1, 1))
    return root + a * (np.cos(t) * u + np.sin(t) * v)


def walking_pose(body: Body, phase: float, amplitude: float = 1.0) -> np.ndarray:
    """Keypoints (17, 3) of a walking person at gait ``phase`` (radians; one cycle = two steps).

    ``amplitude`` in [0, 1] scales the stride (0 = standing still). Feet stay on the ground.
    """
    s = body.s
    kp = np.zeros((17, 3))
    a = 0.28 * amplitude
    thigh, shank = 0.45 * s, 0.43 * s
    hip_z = 0.93 * s
    for hip, knee, ankle, side, psi in ((LHIP, LKNE, LANK, 1.0, phase), (RHIP, RKNE, RANK, -1.0, phase + np.pi)):
        alpha = a * np.sin(psi)
        beta = 0.6 * amplitude * max(0.0, np.cos(psi + 0.5)) ** 3
        kp[hip] = (0.0, side * 0.1 * s, hip_z)
        kp[knee] = kp[hip] + thigh * np.array([np.sin(alpha), 0.0, -np.cos(alpha)])
        kp[ankle] = kp[knee] + shank * np.array([np.sin(alpha - beta), 0.0, -np.cos(alpha - beta)])
    kp[:, 2] += 0.08 * s - min(kp[LANK, 2], kp[RANK, 2])  # planted foot on the ground
    pelvis = 0.5 * (kp[LHIP] + kp[RHIP])
    lean = 0.06 * amplitude
    neck = pelvis + 0.5 * s * np.array([np.sin(lean), 0.0, np.cos(lean)])
    _head_and_shoulders(kp, neck, s, body.shoulder, np.array([1.0, 0.0, 0.0]))
    for sh, el, wr, side, psi in ((LSH, LELB, LWRI, 1.0, phase + np.pi), (RSH, RELB, RWRI, -1.0, phase)):
        g = 0.7 * a * np.sin(psi)
        e = 0.25 + 0.35 * amplitude * max(0.0, np.sin(psi))
        kp[el] = kp[sh] + 0.29 * s * np.array([np.sin(g), side * 0.08, -np.cos(g)])
        kp[wr] = kp[el] + 0.27 * s * np.array([np.sin(g + e), side * 0.05, -np.cos(g + e)])
    return kp


def standing_pose(body: Body, t: float) -> np.ndarray:
    """Keypoints (17, 3) of a person standing, with a slow sway over time ``t`` (seconds)."""
    kp = walking_pose(body, 0.0, amplitude=0.0)
    sway = 0.015 * body.s * np.sin(0.8 * t)
    kp[[NOSE, LEYE, REYE, LEAR, REAR, LSH, RSH, LELB, RELB, LWRI, RWRI], 1] += sway
    return kp


def cycling_pose(body: Body, crank_phase: float) -> np.ndarray:
    """Keypoints (17, 3) of a rider on the SynthTown bicycle (frame of :func:`vehicles.bicycle`)."""
    s = body.s
    kp = np.zeros((17, 3))
    saddle = np.array([-0.24, 0.0, 0.96])
    crank = np.array([0.0, 0.0, 0.3])
    thigh, shank = 0.45 * s, 0.43 * s
    for hip, knee, ankle, side, psi in ((LHIP, LKNE, LANK, 1.0, crank_phase), (RHIP, RKNE, RANK, -1.0, crank_phase + np.pi)):
        kp[hip] = saddle + (0.0, side * 0.1 * s, 0.04)
        pedal = crank + np.array([0.17 * np.cos(psi), side * 0.12, 0.17 * np.sin(psi)])
        reach = min(np.linalg.norm(pedal - kp[hip]), thigh + shank - 0.02)
        kp[ankle] = kp[hip] + (pedal - kp[hip]) / np.linalg.norm(pedal - kp[hip]) * reach
        kp[knee] = _two_link(kp[hip], kp[ankle], thigh, shank, np.array([1.0, 0.0, 0.3]))
    pelvis = 0.5 * (kp[LHIP] + kp[RHIP])
    lean = np.deg2rad(38)
    neck = pelvis + 0.5 * s * np.array([np.sin(lean), 0.0, np.cos(lean)])
    _head_and_shoulders(kp, neck, s, body.shoulder, np.array([1.0, 0.0, 0.0]))
    for sh, el, wr, side in ((LSH, LELB, LWRI, 1.0), (RSH, RELB, RWRI, -1.0)):
        kp[wr] = np.array([0.42, side * 0.24, 1.03])
        kp[el] = _two_link(kp[sh], kp[wr], 0.29 * s, 0.27 * s, np.array([0.0, side * 0.5, -1.0]))
    return kp


_LIMBS = ((LHIP, LKNE, 0.15, "pants"), (RHIP, RKNE, 0.15, "pants"), (LKNE, LANK, 0.11, "pants"), (RKNE, RANK, 0.11, "pants"),
          (LSH, LELB, 0.09, "shirt"), (RSH, RELB, 0.09, "shirt"), (LELB, LWRI, 0.075, "skin"), (RELB, RWRI, 0.075, "skin"))  # fmt: skip
_LIMB_A = np.array([a for a, _, _, _ in _LIMBS])
_LIMB_B = np.array([b for _, b, _, _ in _LIMBS])
_LIMB_T = np.array([t for _, _, t, _ in _LIMBS])


def body_mesh(body: Body, kp: np.ndarray, instance: int, material: Material = Material.PEDESTRIAN) -> TriangleMesh:
    """A low-poly body following keypoints (17, 3) in the person frame."""
    s = body.s
    kp = np.asarray(kp, float)
    pelvis = 0.5 * (kp[LHIP] + kp[RHIP])
    neck = 0.5 * (kp[LSH] + kp[RSH])
    head = 0.5 * (kp[LEAR] + kp[REAR])
    side = kp[LSH] - kp[RSH]
    up = np.array([0.0, 0.0, 0.06 * s])
    shoe0 = kp[[LANK, RANK]] - np.array([0.05 * s, 0, 0.06 * s])
    shoe1 = kp[[LANK, RANK]] + np.array([0.13 * s, 0, -0.06 * s])
    p0 = np.concatenate([[pelvis - (neck - pelvis) * 0.08, neck], kp[_LIMB_A], shoe0])
    p1 = np.concatenate([[neck, head - up], kp[_LIMB_B], shoe1])
    width = np.concatenate([[np.linalg.norm(side) + 0.06 * s, 0.09 * s], _LIMB_T * s, [0.1 * s, 0.1 * s]])
    depth = np.concatenate([[0.21 * s, 0.09 * s], _LIMB_T * s, [0.05 * s, 0.05 * s]])
    colors = [body.shirt, body.skin] + [getattr(body, c) for _, _, _, c in _LIMBS] + [(0.06, 0.06, 0.06)] * 2
    hints = np.tile([0.0, 1.0, 0.0], (len(p0), 1))
    hints[0] = side
    return TriangleMesh.concat(
        [
            beams(p0, p1, width, depth, colors, material, instance, side_hint=hints),
            icosphere(head + np.array([0.0, 0.0, 0.005 * s]), np.array([0.1, 0.085, 0.12]) * s, body.skin, material, instance),
            icosphere(head + np.array([-0.015 * s, 0.0, 0.05 * s]), np.array([0.1, 0.088, 0.08]) * s, body.hair, material, instance),
        ]
    )


@functools.lru_cache(maxsize=1)
def _unit_extent() -> tuple[float, float, float]:
    """Half width, half length and height of the walking body at height 1.75 m, widest shoulders."""
    body = Body(1.75, (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), shoulder=1.1)
    ext = np.zeros(3)
    for ph in np.linspace(0, 2 * np.pi, 24, endpoint=False):
        v = body_mesh(body, walking_pose(body, ph, 1.0), 0).vertices
        ext = np.maximum(ext, [np.abs(v[:, 1]).max(), np.abs(v[:, 0]).max(), v[:, 2].max()])
    return float(ext[0]), float(ext[1]), float(ext[2])


def box_size(body: Body) -> np.ndarray:
    """(w, l, h) metres of a box (centred on the person frame's origin) holding the walking body
    in every gait phase (the body's proportions scale with its height)."""
    hw, hl, h = _unit_extent()
    return np.array([2 * hw, 2 * hl, h]) * body.s + np.array([0.02, 0.02, 0.01])
