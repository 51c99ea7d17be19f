"""Geometric primitives for SynthTown, each returned as a :class:`TriangleMesh`.

Frames: every function works in whatever frame its arguments are given in (metres, z up); callers
build objects in a local frame (x forward, y left, z up, origin on the ground) and move them with
:meth:`TriangleMesh.transformed`. Faces are counter-clockwise seen from outside.
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.spatial import Delaunay
from shapely.geometry import Polygon

from .mesh import Material, TriangleMesh

__all__ = [
    "beam",
    "beams",
    "box",
    "cone",
    "cylinder",
    "dashes",
    "hexahedron",
    "icosphere",
    "jitter_colors",
    "mesh",
    "polygon_mesh",
    "polyline_strip",
    "quad",
    "resample",
    "triangulate_polygon",
    "wall_strip",
    "with_emissive",
]


def mesh(vertices, faces, color, material: Material, instance: int = 0, emissive: float = 0.0) -> TriangleMesh:
    """A mesh from arrays; ``color`` is one (3,) colour or per-face colours (M, 3)."""
    faces = np.asarray(faces, dtype=np.int32).reshape(-1, 3)
    m = len(faces)
    color = np.asarray(color, dtype=np.float32)
    colors = np.broadcast_to(color, (m, 3)) if color.ndim == 1 else color
    return TriangleMesh(
        vertices=np.asarray(vertices, dtype=np.float64).reshape(-1, 3),
        faces=faces,
        face_color=colors,
        face_instance=np.full(m, instance, dtype=np.int32),
        face_material=np.full(m, int(material), dtype=np.int16),
        face_emissive=np.full(m, emissive, dtype=np.float32),
    )


# Faces of a hexahedron whose corners 0-3 are the bottom ring (counter-clockwise seen from above)
# and 4-7 the top ring above them.
_HEX_FACES = np.array(
    [[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7]]
    + [f for i in range(4) for f in ([i, (i + 1) % 4, (i + 1) % 4 + 4], [i, (i + 1) % 4 + 4, i + 4])],
    dtype=np.int32,
)


def hexahedron(corners: np.ndarray, color, material: Material, instance: int = 0, emissive: float = 0.0, bottom: bool = True) -> TriangleMesh:
    """A convex hexahedron from corners (8, 3): bottom ring 0-3 counter-clockwise from above, top 4-7.

    ``color`` is (3,) or per-face (6, 3) in the order bottom, top, side 0-1, 1-2, 2-3, 3-0.
    ``bottom=False`` drops the bottom face (objects standing on the ground).
    """
    color = np.asarray(color, dtype=np.float32)
    colors = np.repeat(color, 2, axis=0) if color.ndim == 2 else np.tile(color, (12, 1))
    faces = _HEX_FACES if bottom else _HEX_FACES[2:]
    colors = colors if bottom else colors[2:]
    return mesh(corners, faces, colors, material, instance, emissive)


def box(lo, hi, color, material: Material, instance: int = 0, emissive: float = 0.0, bottom: bool = True) -> TriangleMesh:
    """Axis-aligned box between corners ``lo`` (3,) and ``hi`` (3,), metres."""
    (x0, y0, z0), (x1, y1, z1) = np.asarray(lo, float), np.asarray(hi, float)
    ring = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    corners = np.concatenate([np.c_[ring, np.full(4, z0)], np.c_[ring, np.full(4, z1)]])
    return hexahedron(corners, color, material, instance, emissive, bottom)


def _frame(axis: np.ndarray, hint=None) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to ``axis`` and to each other (``u`` near ``hint``)."""
    a = axis / np.linalg.norm(axis)
    hint = np.array([0.0, 0.0, 1.0]) if hint is None else np.asarray(hint, float)
    if abs(np.dot(hint, a)) > 0.95:
        hint = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = hint - np.dot(hint, a) * a
    u /= np.linalg.norm(u)
    return u, np.cross(a, u)


def beam(p0, p1, width: float, depth: float, color, material: Material, instance: int = 0, side_hint=(0.0, 1.0, 0.0)) -> TriangleMesh:
    """A box of cross-section ``width`` x ``depth`` metres whose axis runs from ``p0`` to ``p1``.

    ``width`` is measured along ``side_hint`` (projected perpendicular to the axis).
    """
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    axis = p1 - p0
    if np.linalg.norm(axis) < 1e-6:
        axis = np.array([0.0, 0.0, 1e-3])
        p1 = p0 + axis
    u, v = _frame(axis, side_hint)
    if np.dot(np.cross(u, v), axis) < 0:
        v = -v
    offs = np.array([-u * width - v * depth, u * width - v * depth, u * width + v * depth, -u * width + v * depth]) / 2
    corners = np.concatenate([p0 + offs, p1 + offs])
    return hexahedron(corners, color, material, instance)


def beams(p0, p1, width, depth, colors, material: Material, instance: int = 0, side_hint=(0.0, 1.0, 0.0)) -> TriangleMesh:
    """Many :func:`beam` boxes at once: ``p0``, ``p1`` (n, 3) axis ends; ``width``, ``depth`` (n,)
    metres; ``colors`` (n, 3); ``side_hint`` (3,) or (n, 3). One mesh, 12 faces per beam."""
    p0 = np.asarray(p0, float)
    p1 = np.asarray(p1, float)
    n = len(p0)
    axis = p1 - p0
    length = np.linalg.norm(axis, axis=1, keepdims=True)
    short = length[:, 0] < 1e-6
    axis[short] = (0.0, 0.0, 1e-3)
    p1 = np.where(short[:, None], p0 + axis, p1)
    a = axis / np.linalg.norm(axis, axis=1, keepdims=True)
    hint = np.broadcast_to(np.asarray(side_hint, float), (n, 3)).copy()
    par = np.abs(np.sum(hint * a, axis=1)) > 0.95
    hint[par] = np.where(np.abs(a[par, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    u = hint - np.sum(hint * a, axis=1, keepdims=True) * a
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.stack([a[:, 1] * u[:, 2] - a[:, 2] * u[:, 1], a[:, 2] * u[:, 0] - a[:, 0] * u[:, 2], a[:, 0] * u[:, 1] - a[:, 1] * u[:, 0]], axis=1)
    uw = u * (np.asarray(width, float)[:, None] / 2)
    vd = v * (np.asarray(depth, float)[:, None] / 2)
    offs = np.stack([-uw - vd, uw - vd, uw + vd, -uw + vd], axis=1)  # (n, 4, 3)
    corners = np.concatenate([p0[:, None] + offs, p1[:, None] + offs], axis=1)  # (n, 8, 3)
    faces = (_HEX_FACES[None] + 8 * np.arange(n)[:, None, None]).reshape(-1, 3)
    return mesh(corners.reshape(-1, 3), faces, np.repeat(np.asarray(colors, np.float32), 12, axis=0), material, instance)


def cylinder(p0, p1, radius: float, color, material: Material, instance: int = 0, sides: int = 8, caps: bool = True, emissive: float = 0.0) -> TriangleMesh:
    """A ``sides``-gon prism of ``radius`` metres from ``p0`` to ``p1`` (poles, trunks, wheels)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    axis = p1 - p0
    u, v = _frame(axis)
    th = 2 * np.pi * np.arange(sides) / sides
    ring = radius * (np.cos(th)[:, None] * u + np.sin(th)[:, None] * v)
    if np.dot(np.cross(u, v), axis) < 0:
        ring = ring[::-1]
    verts = np.concatenate([p0 + ring, p1 + ring, [p0, p1]])
    i = np.arange(sides)
    j = (i + 1) % sides
    faces = [np.stack([i, j, j + sides], 1), np.stack([i, j + sides, i + sides], 1)]
    if caps:
        faces += [np.stack([np.full(sides, 2 * sides), j, i], 1), np.stack([np.full(sides, 2 * sides + 1), i + sides, j + sides], 1)]
    return mesh(verts, np.concatenate(faces), color, material, instance, emissive)


def cone(base, radius: float, height: float, color, material: Material, instance: int = 0, sides: int = 10) -> TriangleMesh:
    """An upright cone with its base centre at ``base`` (3,), metres."""
    base = np.asarray(base, float)
    th = 2 * np.pi * np.arange(sides) / sides
    ring = base + np.c_[radius * np.cos(th), radius * np.sin(th), np.zeros(sides)]
    verts = np.concatenate([ring, [base + [0, 0, height], base]])
    i = np.arange(sides)
    j = (i + 1) % sides
    faces = np.concatenate([np.stack([i, j, np.full(sides, sides)], 1), np.stack([np.full(sides, sides + 1), j, i], 1)])
    return mesh(verts, faces, color, material, instance)


def _icosahedron() -> tuple[np.ndarray, np.ndarray]:
    t = (1 + 5**0.5) / 2
    v = np.array([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
                  [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], float)  # fmt: skip
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
                  [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
                  [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]])  # fmt: skip
    return v / np.linalg.norm(v, axis=1, keepdims=True), f


def _unit_sphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    v, f = _icosahedron()
    for _ in range(subdivisions):
        edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
        uniq, inv = np.unique(edges, axis=0, return_inverse=True)
        mid = v[uniq].mean(axis=1)
        mid /= np.linalg.norm(mid, axis=1, keepdims=True)
        m = len(f)
        a, b, c = (inv[:m] + len(v)), (inv[m : 2 * m] + len(v)), (inv[2 * m :] + len(v))
        v = np.concatenate([v, mid])
        f = np.concatenate([np.stack([f[:, 0], a, c], 1), np.stack([f[:, 1], b, a], 1), np.stack([f[:, 2], c, b], 1), np.stack([a, b, c], 1)])
    return v, f


_SPHERES = {n: _unit_sphere(n) for n in range(3)}


def icosphere(center, radii, color, material: Material, instance: int = 0, subdivisions: int = 1) -> TriangleMesh:
    """An ellipsoid (icosphere scaled by ``radii``: a number or (3,) metres) at ``center``."""
    v, f = _SPHERES[subdivisions]
    return mesh(np.asarray(center, float) + v * np.asarray(radii, float), f, color, material, instance)


def quad(corners, color, material: Material, instance: int = 0, emissive: float = 0.0) -> TriangleMesh:
    """A planar quad from 4 corners (4, 3), counter-clockwise seen from its front."""
    return mesh(corners, [[0, 1, 2], [0, 2, 3]], color, material, instance, emissive)


def _polyline_normals(points: np.ndarray) -> np.ndarray:
    """Left unit normals (K, 2) at the vertices of a polyline (averaged at joints)."""
    d = np.diff(points, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    t = np.concatenate([d[:1], d[:-1] + d[1:], d[-1:]])
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-9)
    return np.c_[-t[:, 1], t[:, 0]]


def polyline_strip(points, width: float, z: float, color, material: Material, instance: int = 0) -> TriangleMesh:
    """A flat ribbon ``width`` metres wide centred on a 2D polyline (K, 2), at height ``z`` (markings)."""
    p = np.asarray(points, float)
    if len(p) < 2:
        return TriangleMesh.concat([])
    n = _polyline_normals(p) * (width / 2)
    left, right = p + n, p - n
    k = len(p)
    verts = np.concatenate([np.c_[right, np.full(k, z)], np.c_[left, np.full(k, z)]])
    i = np.arange(k - 1)
    faces = np.concatenate([np.stack([i, i + 1, i + 1 + k], 1), np.stack([i, i + 1 + k, i + k], 1)])
    return mesh(verts, faces, color, material, instance)


def resample(points: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Points (len(s), 2) at arc lengths ``s`` (metres) along a polyline (K, 2)."""
    p = np.asarray(points, float)
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])
    return np.stack([np.interp(s, cum, p[:, 0]), np.interp(s, cum, p[:, 1])], axis=1)


def dashes(points, dash: float, gap: float, phase: float = 0.0) -> list[np.ndarray]:
    """The dash pieces (each (K, 2)) of a dashed line along a polyline: ``dash`` on, ``gap`` off (metres)."""
    p = np.asarray(points, float)
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])
    out = []
    s = phase
    while s < cum[-1]:
        e = min(s + dash, cum[-1])
        if e - s > 0.2:
            inner = cum[(cum > s) & (cum < e)]
            out.append(resample(p, np.concatenate([[s], inner, [e]])))
        s += dash + gap
    return out


def wall_strip(points, z0: float, z1: float, color, material: Material, instance: int = 0) -> TriangleMesh:
    """Vertical quads from ``z0`` to ``z1`` along a 2D polyline (K, 2); the front faces the left side."""
    p = np.asarray(points, float)
    k = len(p)
    verts = np.concatenate([np.c_[p, np.full(k, z0)], np.c_[p, np.full(k, z1)]])
    i = np.arange(k - 1)
    faces = np.concatenate([np.stack([i, i + k + 1, i + 1], 1), np.stack([i, i + k, i + k + 1], 1)])
    return mesh(verts, faces, color, material, instance)


def triangulate_polygon(poly: Polygon, max_edge: float = 2.0, interior_spacing: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Triangles covering a shapely polygon (holes allowed).

    The boundary is densified to ``max_edge`` metres, interior points are added on a grid of
    ``interior_spacing`` metres (default ``4 * max_edge``), the point set is Delaunay-triangulated
    and triangles whose centroid and edge midpoints fall outside the polygon are dropped.
    Returns ``(vertices (N, 2), faces (M, 3))`` with faces counter-clockwise seen from above.
    """
    if poly.is_empty or poly.area <= 0:
        return np.zeros((0, 2)), np.zeros((0, 3), dtype=np.int32)
    dense = shapely.segmentize(poly, max_edge)
    rings = [dense.exterior, *dense.interiors]
    pts = [np.asarray(r.coords)[:-1] for r in rings]
    spacing = interior_spacing or 4 * max_edge
    x0, y0, x1, y1 = poly.bounds
    gx, gy = np.meshgrid(np.arange(x0 + spacing / 2, x1, spacing), np.arange(y0 + spacing / 2, y1, spacing))
    gx, gy = gx.ravel(), gy.ravel()
    inner = poly.buffer(-0.35 * spacing)
    if not inner.is_empty and len(gx):
        shapely.prepare(inner)
        keep = shapely.contains_xy(inner, gx, gy)
        pts.append(np.c_[gx[keep], gy[keep]])
    v = np.unique(np.round(np.concatenate(pts), 6), axis=0)
    if len(v) < 3:
        return np.zeros((0, 2)), np.zeros((0, 3), dtype=np.int32)
    tri = Delaunay(v)
    f = tri.simplices
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    shapely.prepare(poly)
    tol = poly.buffer(1e-3)
    shapely.prepare(tol)
    inside = shapely.contains_xy(poly, *((a + b + c) / 3).T)
    for m in ((a + b) / 2, (b + c) / 2, (c + a) / 2):
        inside &= shapely.contains_xy(tol, *m.T)
    f = f[inside]
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    cross = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
    f[cross < 0] = f[cross < 0][:, [0, 2, 1]]
    f = f[np.abs(cross) > 1e-9]
    return v, f.astype(np.int32)


def polygon_mesh(poly: Polygon, z: float, color, material: Material, max_edge: float = 2.0, interior_spacing: float | None = None) -> TriangleMesh:
    """A flat, upward-facing mesh of a shapely (Multi)Polygon at height ``z`` metres."""
    parts = list(poly.geoms) if hasattr(poly, "geoms") else [poly]
    meshes = []
    for p in parts:
        v, f = triangulate_polygon(p, max_edge, interior_spacing)
        if len(f):
            meshes.append(mesh(np.c_[v, np.full(len(v), z)], f, color, material))
    return TriangleMesh.concat(meshes)


def jitter_colors(m: TriangleMesh, rng: np.random.Generator, amount: float) -> TriangleMesh:
    """``m`` with each face colour scaled by ``1 + amount * N(0, 1)`` (per-face texture variation)."""
    scale = 1.0 + amount * rng.standard_normal((m.num_faces, 1))
    return TriangleMesh(m.vertices, m.faces, np.clip(m.face_color * scale, 0, 1), m.face_instance, m.face_material, m.face_emissive)


def with_emissive(m: TriangleMesh, emissive: float) -> TriangleMesh:
    """``m`` with every face's emission set to ``emissive``."""
    return TriangleMesh(m.vertices, m.faces, m.face_color, m.face_instance, m.face_material, np.full(m.num_faces, emissive, np.float32))
