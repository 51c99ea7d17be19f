"""PLY sweeps: exact round trips, the header, open3d reading them, errors."""

from __future__ import annotations

import numpy as np
import pytest

from genesis_drive.errors import DataError
from genesis_drive.export.ply import read_ply, sweep_to_ply_bytes, write_ply


def _sweep(n: int = 257, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = np.empty((n, 5), dtype=np.float32)
    pts[:, :3] = rng.normal(0, 30, size=(n, 3))
    pts[:, 3] = rng.uniform(0, 255, size=n)
    pts[:, 4] = rng.integers(0, 32, size=n)
    return pts


def test_round_trip_is_exact(tmp_path):
    pts = _sweep()
    path = write_ply(tmp_path / "s.ply", pts)
    back = read_ply(path)
    assert list(back) == ["x", "y", "z", "intensity", "ring"]
    for i, name in enumerate(back):
        np.testing.assert_array_equal(back[name].astype(np.float32), pts[:, i])
    assert back["ring"].dtype == np.uint16 and back["x"].dtype == np.float32
    assert [p.name for p in tmp_path.iterdir()] == ["s.ply"]  # no temporary left behind


def test_header_and_size():
    data = sweep_to_ply_bytes(_sweep(10)[:, :4])
    header, body = data.split(b"end_header\n")
    assert header.decode().splitlines() == [
        "ply", "format binary_little_endian 1.0", "comment genesis-drive LiDAR sweep (metres)", "element vertex 10",
        "property float x", "property float y", "property float z", "property float intensity",
    ]  # fmt: skip
    assert len(body) == 10 * 16
    xyz = sweep_to_ply_bytes(np.zeros((3, 3)))
    assert b"intensity" not in xyz and xyz.endswith(b"\0" * 36)


def test_open3d_reads_it(tmp_path):
    import open3d as o3d

    pts = _sweep(100)
    pc = o3d.io.read_point_cloud(str(write_ply(tmp_path / "s.ply", pts)))
    np.testing.assert_array_equal(np.asarray(pc.points), pts[:, :3].astype(np.float64))


@pytest.mark.parametrize(
    "points, match",
    [
        (np.zeros((4, 2)), r"\(N, >=3\)"),
        (np.full((4, 3), np.nan), "finite"),
        (np.c_[np.zeros((2, 4)), [0.5, 1.0]], "ring"),
        (np.c_[np.zeros((2, 4)), [-1.0, 1.0]], "ring"),
    ],
)
def test_bad_points(points, match):
    with pytest.raises(ValueError, match=match):
        sweep_to_ply_bytes(points)


def test_read_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_ply(tmp_path / "missing.ply")
    (tmp_path / "a.ply").write_text("hello")
    with pytest.raises(DataError, match="not a PLY"):
        read_ply(tmp_path / "a.ply")
    (tmp_path / "b.ply").write_bytes(sweep_to_ply_bytes(_sweep(10))[:-1])
    with pytest.raises(DataError, match="truncated"):
        read_ply(tmp_path / "b.ply")
    (tmp_path / "c.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 0\nend_header\n")
    with pytest.raises(DataError, match="binary_little_endian"):
        read_ply(tmp_path / "c.ply")
