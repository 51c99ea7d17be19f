"""Vehicle body models (cars, trucks, buses, bicycles) as triangle meshes in their own frame.

Object frame: x forward, y left, z up, metres, origin at the centre of the box's *bottom* face
(on the ground). Every model fills its annotation box ``(w, l, h)`` exactly: the box centre is at
``(0, 0, h / 2)`` in this frame. Lamp faces are flagged so they can glow at night or when braking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mesh import Material, TriangleMesh
from .pedestrians import Body, body_mesh, cycling_pose
from .primitives import beam, box, cylinder, hexahedron, quad

__all__ = ["CAR_COLORS", "VehicleModel", "bicycle", "bus", "car", "lit", "truck"]

CAR_COLORS = (
    ((0.85, 0.85, 0.85), 0.22),  # white
    ((0.05, 0.05, 0.06), 0.2),  # black
    ((0.55, 0.56, 0.58), 0.17),  # silver
    ((0.3, 0.31, 0.33), 0.12),  # grey
    ((0.55, 0.06, 0.05), 0.08),  # red
    ((0.08, 0.16, 0.42), 0.08),  # blue
    ((0.1, 0.25, 0.15), 0.04),  # green
    ((0.62, 0.55, 0.4), 0.04),  # beige
    ((0.85, 0.65, 0.05), 0.05),  # yellow
)
GLASS = (0.08, 0.1, 0.13)
TYRE = (0.03, 0.03, 0.03)
HEADLAMP = (0.95, 0.92, 0.8)
TAILLAMP = (0.7, 0.02, 0.02)
PLATE = (0.9, 0.9, 0.85)


@dataclass(frozen=True, eq=False)
class VehicleModel:
    """A vehicle mesh in its object frame with its annotation size.

    size: (w, l, h) metres (nuScenes order). head / tail: (M,) bool masks of head- and tail-lamp faces.
    headlight_offset: (3,) centre between the headlamps (object frame), for the renderer's spot lights.
    """

    category: str
    size: np.ndarray
    mesh: TriangleMesh
    head: np.ndarray
    tail: np.ndarray
    headlight_offset: np.ndarray


def _pick_color(rng: np.random.Generator) -> np.ndarray:
    cols = np.array([c for c, _ in CAR_COLORS])
    w = np.array([p for _, p in CAR_COLORS])
    c = cols[rng.choice(len(cols), p=w / w.sum())]
    return np.clip(c * rng.uniform(0.9, 1.1), 0, 1)


def _restyle(m: TriangleMesh, material: np.ndarray | None = None) -> TriangleMesh:
    return TriangleMesh(m.vertices, m.faces, m.face_color, m.face_instance, m.face_material if material is None else material, m.face_emissive)


def _wheel(x: float, y: float, r: float, width: float, instance: int) -> TriangleMesh:
    side = np.sign(y)
    return cylinder((x, y - side * width, r), (x, y, r), r, TYRE, Material.VEHICLE_BODY, instance, sides=10)


def _lamps(length: float, w: float, z0: float, z1: float, inset: float, instance: int) -> tuple[list[TriangleMesh], list[TriangleMesh]]:
    """Head lamps on the front face (x = +l/2) and tail lamps on the back face (x = -l/2)."""
    heads, tails = [], []
    xf = length / 2 + 0.006  # just proud of the body so the lamps do not z-fight with it
    for s in (1.0, -1.0):
        y0, y1 = s * (w / 2 - inset), s * (w / 2 - inset - 0.3)
        ya, yb = (y1, y0) if s > 0 else (y0, y1)
        heads.append(quad([(xf, ya, z0), (xf, yb, z0), (xf, yb, z1), (xf, ya, z1)], HEADLAMP, Material.LAMP, instance))
        tails.append(quad([(-xf, yb, z0), (-xf, ya, z0), (-xf, ya, z1), (-xf, yb, z1)], TAILLAMP, Material.LAMP, instance))
    return heads, tails


def _plates(length: float, z: float, instance: int) -> list[TriangleMesh]:
    out = []
    for x, s in ((length / 2 + 0.004, 1), (-length / 2 - 0.004, -1)):
        ys = (-0.26, 0.26) if s > 0 else (0.26, -0.26)
        out.append(quad([(x, ys[0], z - 0.06), (x, ys[1], z - 0.06), (x, ys[1], z + 0.06), (x, ys[0], z + 0.06)], PLATE, Material.LICENSE_PLATE, instance))
    return out


def _assemble(category: str, size, body: list[TriangleMesh], heads: list[TriangleMesh], tails: list[TriangleMesh], light_z: float) -> VehicleModel:
    parts = body + heads + tails
    m = TriangleMesh.concat(parts)
    n_body = sum(p.num_faces for p in body)
    n_head = sum(p.num_faces for p in heads)
    head = np.zeros(m.num_faces, bool)
    tail = np.zeros(m.num_faces, bool)
    head[n_body : n_body + n_head] = True
    tail[n_body + n_head :] = True
    size = np.asarray(size, float)
    return VehicleModel(category, size, m, head, tail, np.array([size[1] / 2, 0.0, light_z]))


def car(rng: np.random.Generator, instance: int) -> VehicleModel:
    """A passenger car (sedan, hatchback or SUV) with a random colour, vehicle.car."""
    kind = rng.choice(3, p=[0.45, 0.25, 0.3])
    length = float(rng.uniform(*((4.4, 4.95), (3.9, 4.3), (4.5, 4.95))[kind]))
    w = float(rng.uniform(1.75, 1.95))
    h = float(rng.uniform(*((1.4, 1.5), (1.45, 1.55), (1.65, 1.85))[kind]))
    paint = _pick_color(rng)
    zb = h * (0.55 if kind == 2 else 0.5)
    hood = (1.15, 0.75, 0.95)[kind]
    tail = (0.6, 0.15, 0.2)[kind]
    trim = np.clip(paint * 0.35, 0, 1)
    wb = w / 2 - 0.006  # body half width: the tyres' outer faces (6 mm proud) mark the box's sides
    body = [
        box((-length / 2 + 0.3, -wb, 0.12), (length / 2 - 0.3, wb, zb), paint, Material.VEHICLE_BODY, instance),
        # bumpers with low spoilers, reaching nearly to the ground at both ends
        box((length / 2 - 0.3, -wb, 0.03), (length / 2, wb, zb), paint, Material.VEHICLE_BODY, instance),
        box((-length / 2, -wb, 0.03), (-length / 2 + 0.3, wb, zb), paint, Material.VEHICLE_BODY, instance),
        box((length / 2 - 0.3 + 0.005, -wb - 0.003, 0.03), (length / 2 + 0.003, wb + 0.003, 0.26), trim, Material.VEHICLE_BODY, instance),
        box((-length / 2 - 0.003, -wb - 0.003, 0.03), (-length / 2 + 0.3 - 0.005, wb + 0.003, 0.26), trim, Material.VEHICLE_BODY, instance),
    ]
    # cabin: glass sides, painted roof
    b0, b1 = -length / 2 + tail, length / 2 - hood
    t0, t1 = b0 + (0.35 if kind == 0 else 0.12), b1 - 0.75
    wc, wt = w / 2 - 0.08, w / 2 - 0.22
    corners = np.array([[b0, -wc, zb], [b1, -wc, zb], [b1, wc, zb], [b0, wc, zb], [t0, -wt, h], [t1, -wt, h], [t1, wt, h], [t0, wt, h]])
    colors = np.array([paint, paint, GLASS, GLASS, GLASS, GLASS])
    cab = hexahedron(corners, colors, Material.VEHICLE_GLASS, instance, bottom=False)
    mat = np.full(cab.num_faces, int(Material.VEHICLE_GLASS), np.int16)
    mat[:2] = int(Material.VEHICLE_BODY)
    body.append(_restyle(cab, mat))
    r = float(rng.uniform(0.31, 0.36))
    for x in (length / 2 - 0.85, -length / 2 + 0.8):
        for y in (w / 2, -w / 2):
            body.append(_wheel(x, y, r, 0.22, instance))
    body += _plates(length, 0.45, instance)
    heads, tails = _lamps(length, w, zb - 0.2, zb - 0.06, 0.12, instance)
    return _assemble("vehicle.car", (w, length, h), body, heads, tails, zb - 0.13)


def truck(rng: np.random.Generator, instance: int) -> VehicleModel:
    """A box truck: cab with windscreen plus a cargo box, vehicle.truck."""
    length = float(rng.uniform(6.5, 9.0))
    w = float(rng.uniform(2.35, 2.5))
    h = float(rng.uniform(2.9, 3.6))
    cab_color = _pick_color(rng)
    cargo_color = np.clip(rng.choice([0.85, 0.6, 0.3]) * np.ones(3) + rng.uniform(-0.05, 0.05, 3), 0, 1)
    cab_l = 2.2
    hc = 0.97 * h  # cab-over box truck: the cab is nearly as tall as the cargo box
    x_cab = length / 2 - cab_l
    body = [
        box((x_cab, -w / 2, 0.35), (length / 2, w / 2, hc), cab_color, Material.VEHICLE_BODY, instance),
        box((-length / 2, -w / 2, 0.45), (x_cab - 0.15, w / 2, h), cargo_color, Material.VEHICLE_BODY, instance),
        box((-length / 2 + 0.3, -0.5, 0.4), (x_cab, 0.5, 0.6), (0.1, 0.1, 0.1), Material.VEHICLE_BODY, instance),
        quad([(length / 2 + 0.005, -w / 2 + 0.12, hc * 0.45), (length / 2 + 0.005, w / 2 - 0.12, hc * 0.45), (length / 2 + 0.005, w / 2 - 0.12, hc * 0.75),
              (length / 2 + 0.005, -w / 2 + 0.12, hc * 0.75)], GLASS, Material.VEHICLE_GLASS, instance),
    ]
    for s in (1.0, -1.0):  # side windows of the cab
        y = s * (w / 2 + 0.005)
        xs = (length / 2 - 0.2, length / 2 - 1.2) if s > 0 else (length / 2 - 1.2, length / 2 - 0.2)
        body.append(quad([(xs[0], y, hc * 0.45), (xs[1], y, hc * 0.45), (xs[1], y, hc * 0.75), (xs[0], y, hc * 0.75)], GLASS, Material.VEHICLE_GLASS, instance))
    r = 0.5
    for x in (length / 2 - 1.2, -length / 2 + 1.6, -length / 2 + 2.7):
        for y in (w / 2, -w / 2):
            body.append(_wheel(x, y, r, 0.3, instance))
    body += _plates(length, 0.6, instance)
    heads, tails = _lamps(length, w, 0.75, 0.95, 0.15, instance)
    return _assemble("vehicle.truck", (w, length, h), body, heads, tails, 0.85)


def bus(rng: np.random.Generator, instance: int) -> VehicleModel:
    """A rigid city bus with a window band, vehicle.bus.rigid."""
    length = float(rng.uniform(10.5, 12.2))
    w = 2.55
    h = float(rng.uniform(3.0, 3.3))
    palette = [(0.85, 0.75, 0.1), (0.1, 0.3, 0.65), (0.75, 0.1, 0.1), (0.9, 0.9, 0.9), (0.15, 0.45, 0.2)]
    paint = np.array(palette[rng.integers(len(palette))])
    body = [box((-length / 2, -w / 2, 0.25), (length / 2, w / 2, h), paint, Material.VEHICLE_BODY, instance)]
    z0, z1 = 1.15, h - 0.35
    for s in (1.0, -1.0):
        y = s * (w / 2 + 0.005)
        xs = (-length / 2 + 0.6, length / 2 - 0.4) if s < 0 else (length / 2 - 0.4, -length / 2 + 0.6)
        body.append(quad([(xs[0], y, z0), (xs[1], y, z0), (xs[1], y, z1), (xs[0], y, z1)], GLASS, Material.VEHICLE_GLASS, instance))
    body.append(quad([(length / 2 + 0.005, -w / 2 + 0.1, 1.0), (length / 2 + 0.005, w / 2 - 0.1, 1.0), (length / 2 + 0.005, w / 2 - 0.1, h - 0.2),
                      (length / 2 + 0.005, -w / 2 + 0.1, h - 0.2)], GLASS, Material.VEHICLE_GLASS, instance))  # fmt: skip
    for x in (length / 2 - 2.6, -length / 2 + 3.0):
        for y in (w / 2, -w / 2):
            body.append(_wheel(x, y, 0.5, 0.3, instance))
    body += _plates(length, 0.55, instance)
    heads, tails = _lamps(length, w, 0.6, 0.8, 0.15, instance)
    return _assemble("vehicle.bus.rigid", (w, length, h), body, heads, tails, 0.7)


def bicycle(rng: np.random.Generator, instance: int, rider: Body) -> VehicleModel:
    """A bicycle frame; its rider's body is added per frame (:func:`pedestrians.cycling_pose`).

    The size covers the bicycle and the seated, pedalling rider in every crank position.
    """
    color = _pick_color(rng)
    r = 0.34
    parts = []
    for x in (0.52, -0.52):
        parts.append(cylinder((x, -0.02, r), (x, 0.02, r), r, TYRE, Material.CYCLIST, instance, sides=12))
    crank = np.array([0.0, 0.0, 0.3])
    seat = np.array([-0.22, 0.0, 0.92])
    head = np.array([0.42, 0.0, 0.95])
    for a, b in ((np.array([-0.52, 0, r]), crank), (crank, seat), (seat, head), (crank, head), (np.array([0.52, 0, r]), head)):
        parts.append(beam(a, b, 0.04, 0.04, color, Material.CYCLIST, instance))
    parts.append(beam((0.42, -0.27, 1.02), (0.42, 0.27, 1.02), 0.03, 0.03, (0.1, 0.1, 0.1), Material.CYCLIST, instance, side_hint=(1, 0, 0)))
    m = TriangleMesh.concat(parts)
    v = np.concatenate([m.vertices] + [body_mesh(rider, cycling_pose(rider, ph), instance).vertices for ph in np.linspace(0, 2 * np.pi, 12, endpoint=False)])
    size = np.array([2 * np.abs(v[:, 1]).max(), 2 * np.abs(v[:, 0]).max(), v[:, 2].max()]) + 0.01
    none = np.zeros(m.num_faces, bool)
    return VehicleModel("vehicle.bicycle", size, m, none, none, np.array([0.5, 0.0, 1.0]))


def lit(model: VehicleModel, head: float, tail: float) -> TriangleMesh:
    """The model's mesh with head lamps emitting ``head`` and tail lamps ``tail`` (0 = off)."""
    m = model.mesh
    em = np.zeros(m.num_faces, np.float32)
    em[model.head] = head
    em[model.tail] = tail
    return TriangleMesh(m.vertices, m.faces, m.face_color, m.face_instance, m.face_material, em)
