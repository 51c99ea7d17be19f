"""LiDAR sweeps as binary little-endian PLY files (what CloudCompare, MeshLab, open3d and Blender read).

A sweep is (N, C >= 3) float ``x, y, z[, intensity[, ring]]`` in metres in the frame the caller
chose (the LiDAR sensor frame for nuScenes sweeps). The file holds one ``vertex`` element with
``float x, y, z``, then ``float intensity`` when C >= 4 and ``ushort ring`` when C >= 5 (columns
past the fifth are not written). Values round-trip exactly through :func:`read_ply` (float32 and
integral rings up to 65535).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.atomic import atomic_write_bytes
from ..errors import DataError

__all__ = ["PLY_PROPERTIES", "sweep_to_ply_bytes", "write_ply", "read_ply"]

#: (name, numpy little-endian dtype, PLY type) of the properties, in column order.
PLY_PROPERTIES: tuple[tuple[str, str, str], ...] = (
    ("x", "<f4", "float"),
    ("y", "<f4", "float"),
    ("z", "<f4", "float"),
    ("intensity", "<f4", "float"),
    ("ring", "<u2", "ushort"),
)
_PLY_TYPES = {"char": "i1", "uchar": "u1", "short": "<i2", "ushort": "<u2", "int": "<i4", "uint": "<u4", "float": "<f4", "double": "<f8",
              "int8": "i1", "uint8": "u1", "int16": "<i2", "uint16": "<u2", "int32": "<i4", "uint32": "<u4", "float32": "<f4", "float64": "<f8"}  # fmt: skip


def sweep_to_ply_bytes(points: np.ndarray) -> bytes:
    """The PLY file content of points (N, C >= 3) (see the module docstring for the properties)."""
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] < 3 or not np.issubdtype(pts.dtype, np.number):
        raise ValueError(f"PLY points must be numeric (N, >=3) x, y, z[, intensity[, ring]], got {pts.shape} {pts.dtype}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("PLY points must be finite (NaN or inf found)")
    props = PLY_PROPERTIES[: min(pts.shape[1], len(PLY_PROPERTIES))]
    if len(props) == 5:
        ring = pts[:, 4]
        if np.any(ring != np.round(ring)) or np.any(ring < 0) or np.any(ring > 65535):
            raise ValueError("PLY ring column (5th) must hold integers 0..65535 (the LiDAR beam index)")
    rec = np.empty(len(pts), dtype=[(n, d) for n, d, _ in props])
    for i, (name, _, _) in enumerate(props):
        rec[name] = pts[:, i]
    header = ["ply", "format binary_little_endian 1.0", "comment genesis-drive LiDAR sweep (metres)", f"element vertex {len(pts)}"]
    header += [f"property {t} {n}" for n, _, t in props] + ["end_header"]
    return ("\n".join(header) + "\n").encode("ascii") + rec.tobytes()


def write_ply(path: str | Path, points: np.ndarray) -> Path:
    """Write points (N, C >= 3) as a binary little-endian PLY file at ``path``, atomically."""
    return atomic_write_bytes(path, sweep_to_ply_bytes(points))


def read_ply(path: str | Path) -> dict[str, np.ndarray]:
    """The vertex properties of a binary little-endian PLY file (list properties unsupported): name -> (N,)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("PLY file not found", path) from None
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise DataError("not a PLY file (expected 'ply' ... 'end_header')", path)
    lines = data[:end].decode("ascii", errors="replace").splitlines()
    if "format binary_little_endian 1.0" not in lines:
        raise DataError("only binary_little_endian 1.0 PLY files are read", path, "format")
    count, fields, element = 0, [], None
    for line in lines:
        words = line.split()
        if words[:1] == ["element"]:
            if element == "vertex":
                break  # the vertex element ends where the next element starts
            element = words[1]
            count = int(words[2]) if element == "vertex" else count
        elif words[:1] == ["property"] and element == "vertex":
            if words[1] == "list" or words[1] not in _PLY_TYPES:
                raise DataError(f"unsupported vertex property {' '.join(words[1:])!r}", path, "property")
            fields.append((words[2], _PLY_TYPES[words[1]]))
    dtype = np.dtype(fields)
    body = data[end + len(b"end_header\n") :]
    if len(body) < count * dtype.itemsize:
        raise DataError(f"truncated: {count} vertices need {count * dtype.itemsize} bytes, found {len(body)}", path)
    rec = np.frombuffer(body, dtype=dtype, count=count)
    return {name: rec[name].copy() for name in dtype.names}
