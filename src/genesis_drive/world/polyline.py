"""Arc-length parametrised 2D polylines (lane centre lines, sidewalk paths), global frame, metres."""

from __future__ import annotations

import bisect

import numpy as np

__all__ = ["Polyline", "bezier"]


class Polyline:
    """A 2D polyline with arc-length lookup.

    points: (K, 2) metres; ``closed`` polylines wrap around (the last point connects to the first).
    Headings (radians, counter-clockwise from +x) are interpolated between vertex tangents, so a
    follower turns smoothly.
    """

    def __init__(self, points, closed: bool = False):
        p = np.asarray(points, dtype=np.float64)
        if closed and len(p) > 2 and np.allclose(p[0], p[-1]):
            p = p[:-1]
        if p.ndim != 2 or p.shape[1] != 2 or len(p) < 2:
            raise ValueError(f"Polyline needs (K>=2, 2) points, got {p.shape}")
        keep = np.r_[True, np.linalg.norm(np.diff(p, axis=0), axis=1) > 1e-6]
        p = p[keep]
        self.closed = closed
        self.points = np.concatenate([p, p[:1]]) if closed else p
        seg = np.diff(self.points, axis=0)
        self.cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(seg, axis=1))])
        self.length = float(self.cum[-1])
        d = seg / np.linalg.norm(seg, axis=1, keepdims=True)
        if closed:
            t = d + np.roll(d, 1, axis=0)
            t = np.concatenate([t, t[:1]])
        else:
            t = np.concatenate([d[:1], d[:-1] + d[1:], d[-1:]])
        self._headings = np.unwrap(np.arctan2(t[:, 1], t[:, 0]))
        # plain-Python copies for the fast scalar lookup (:meth:`at`)
        self._cum_l = self.cum.tolist()
        self._x_l = self.points[:, 0].tolist()
        self._y_l = self.points[:, 1].tolist()
        self._h_l = self._headings.tolist()

    def at(self, s: float) -> tuple[float, float, float]:
        """``(x, y, heading)`` at one arc length ``s`` (a fast scalar version of :meth:`xy`/:meth:`heading`)."""
        s = s % self.length if self.closed else min(max(s, 0.0), self.length)
        k = min(max(bisect.bisect_right(self._cum_l, s) - 1, 0), len(self._cum_l) - 2)
        c0, c1 = self._cum_l[k], self._cum_l[k + 1]
        a = (s - c0) / (c1 - c0) if c1 > c0 else 0.0
        return (
            self._x_l[k] + a * (self._x_l[k + 1] - self._x_l[k]),
            self._y_l[k] + a * (self._y_l[k + 1] - self._y_l[k]),
            self._h_l[k] + a * (self._h_l[k + 1] - self._h_l[k]),
        )

    def _wrap(self, s) -> np.ndarray:
        s = np.asarray(s, dtype=np.float64)
        return np.mod(s, self.length) if self.closed else np.clip(s, 0.0, self.length)

    def xy(self, s) -> np.ndarray:
        """Points (..., 2) at arc lengths ``s`` (metres)."""
        s = self._wrap(s)
        return np.stack([np.interp(s, self.cum, self.points[:, 0]), np.interp(s, self.cum, self.points[:, 1])], axis=-1)

    def heading(self, s) -> np.ndarray:
        """Headings (...) radians at arc lengths ``s``."""
        return np.interp(self._wrap(s), self.cum, self._headings)

    def offset(self, d: float) -> Polyline:
        """The polyline shifted ``d`` metres to the left (negative: right)."""
        h = self._headings
        pts = self.points + d * np.stack([-np.sin(h), np.cos(h)], axis=1)
        return Polyline(pts, closed=self.closed)

    def sample(self, step: float) -> np.ndarray:
        """Points (K, 2) every ~``step`` metres including both ends."""
        n = max(int(np.ceil(self.length / step)), 1)
        return self.xy(np.linspace(0.0, self.length, n + 1))

    def sub(self, s0: float, s1: float, step: float = 1.0) -> Polyline:
        """The piece between arc lengths ``s0 < s1`` (open polylines), resampled every ~``step`` m."""
        n = max(int(np.ceil((s1 - s0) / step)), 1)
        return Polyline(self.xy(np.linspace(s0, s1, n + 1)))

    def reversed(self) -> Polyline:
        return Polyline(self.points[::-1], closed=self.closed)

    def project(self, xy) -> tuple[np.ndarray, np.ndarray]:
        """Arc length of the nearest point and the distance to it, for points (N, 2)."""
        q = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        a, b = self.points[:-1], self.points[1:]
        ab = b - a
        t = np.clip(np.einsum("nkd,kd->nk", q[:, None] - a[None], ab) / np.einsum("kd,kd->k", ab, ab), 0, 1)
        near = a[None] + t[..., None] * ab[None]
        dist = np.linalg.norm(q[:, None] - near, axis=2)
        k = np.argmin(dist, axis=1)
        idx = np.arange(len(q))
        s = self.cum[k] + t[idx, k] * np.linalg.norm(ab[k], axis=1)
        return s, dist[idx, k]


def bezier(p0, p1, p2, p3, step: float = 1.0) -> np.ndarray:
    """Points (K, 2) about ``step`` metres apart along the cubic Bezier curve with controls p0..p3."""
    ctrl = np.asarray([p0, p1, p2, p3], dtype=np.float64)
    t = np.linspace(0, 1, 256)[:, None]
    dense = ((1 - t) ** 3) * ctrl[0] + 3 * ((1 - t) ** 2) * t * ctrl[1] + 3 * (1 - t) * t**2 * ctrl[2] + t**3 * ctrl[3]
    return Polyline(dense).sample(step)
