"""Benchmark SynthTown's camera rasteriser: ms per 6-view frame (rgb + depth + instance + material read back).

The scene is procedural and self-contained (~50k triangles): a terrain grid, two crossing roads with
sidewalks and dashed lane markings, buildings with subdivided facades, low-poly trees, street lamps
(static), plus ~40 cars and ~30 pedestrians re-uploaded every frame as the dynamic mesh. The six cameras
follow the nuScenes rig (yaws 0, -55, -110, 180, 110, 55 degrees; front focal 1266 px at 1600x900,
back 809 px), scaled to each resolution.

    python benchmarks/bench_render.py                 # tiny (256x144) and full (800x450), 3 lightings
    python benchmarks/bench_render.py --frames 20 --sizes full --lightings day
    python benchmarks/bench_render.py --scene simple   # ~600 triangles: the per-pixel floor
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from tqdm import tqdm

from genesis_drive.world.lighting import (
    LIGHTING_PRESETS,
    headlights,
    street_lamp,
    with_weather,
)
from genesis_drive.world.mesh import Material, TriangleMesh
from genesis_drive.world.render import CameraView, Rasterizer

SIZES = {"tiny": (256, 144), "full": (800, 450)}
# channel, yaw (deg), focal length at 1600x900 (px), position in the ego frame (m)
RIG = (
    ("CAM_FRONT", 0.0, 1266.0, (1.70, 0.00, 1.55)),
    ("CAM_FRONT_RIGHT", -55.0, 1260.0, (1.55, -0.49, 1.53)),
    ("CAM_BACK_RIGHT", -110.0, 1259.0, (1.04, -0.48, 1.57)),
    ("CAM_BACK", 180.0, 809.0, (0.03, 0.00, 1.58)),
    ("CAM_BACK_LEFT", 110.0, 1256.0, (1.05, 0.48, 1.56)),
    ("CAM_FRONT_LEFT", 55.0, 1272.0, (1.52, 0.49, 1.51)),
)


def grid(x0, x1, y0, y1, z, nx, ny, color, material) -> TriangleMesh:
    """Horizontal rectangle split into nx x ny cells (2 triangles each)."""
    xs, ys = np.linspace(x0, x1, nx + 1), np.linspace(y0, y1, ny + 1)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    v = np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, z)], 1)
    idx = np.arange(gx.size).reshape(nx + 1, ny + 1)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    return TriangleMesh.build(v, np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]), color, material)


def box(center, size, yaw, color, material, instance=0, emissive=0.0) -> TriangleMesh:
    """Box (12 triangles) with its base centred at ``center``; size = (length, width, height) metres."""
    l, w, h = size
    x = np.array([-1, 1, 1, -1, -1, 1, 1, -1]) * l / 2
    y = np.array([-1, -1, 1, 1, -1, -1, 1, 1]) * w / 2
    z = np.array([0, 0, 0, 0, 1, 1, 1, 1]) * h
    c, s = np.cos(yaw), np.sin(yaw)
    v = np.stack([c * x - s * y, s * x + c * y, z], 1) + np.asarray(center, dtype=np.float64)
    f = [[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4], [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]]
    return TriangleMesh.build(v, np.array(f), color, material, instance, emissive)


def facade_building(x, y, size, color, rng) -> TriangleMesh:
    """Box building whose four walls are split into floors x bays (windows darker), plus a roof."""
    l, w, h = size
    parts = [box((x, y, 0), (l, w, h), 0.0, color, Material.BUILDING)]
    floors, bays = max(2, int(h / 3)), 6
    window = np.asarray(color) * 0.35
    for side in range(4):
        ang = side * np.pi / 2
        span = l if side % 2 == 0 else w
        depth = (w if side % 2 == 0 else l) / 2 + 0.03
        n = np.array([np.cos(ang - np.pi / 2), np.sin(ang - np.pi / 2), 0.0])
        t = np.array([np.cos(ang), np.sin(ang), 0.0])
        for f_ in range(floors):
            for b in range(bays):
                if rng.random() < 0.25:
                    continue
                c = np.array([x, y, 0.0]) + n * depth + t * ((b + 0.5) / bays - 0.5) * span
                u0, u1 = -0.35 * span / bays, 0.35 * span / bays
                z0, z1 = f_ * h / floors + 0.8, (f_ + 1) * h / floors - 0.6
                v = np.array([c + t * u0 + [0, 0, z0], c + t * u1 + [0, 0, z0], c + t * u1 + [0, 0, z1], c + t * u0 + [0, 0, z1]])
                parts.append(TriangleMesh.build(v, np.array([[0, 1, 2], [0, 2, 3]]), window, Material.BUILDING))
    return TriangleMesh.concat(parts)


def tree(x, y, rng, segments=12) -> TriangleMesh:
    """Cylinder trunk + cone crown."""
    ang = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([np.cos(ang), np.sin(ang), np.zeros(segments)], 1)
    r, h = 0.15, 2.5
    trunk_v = np.concatenate([ring * r, ring * r + [0, 0, h]]) + [x, y, 0]
    i = np.arange(segments)
    j = (i + 1) % segments
    trunk_f = np.concatenate([np.stack([i, j, j + segments], 1), np.stack([i, j + segments, i + segments], 1)])
    crown_h, crown_r = rng.uniform(3, 6), rng.uniform(1.2, 2.2)
    crown_v = np.concatenate([ring * crown_r + [0, 0, h - 0.5], [[0, 0, h - 0.5 + crown_h]], [[0, 0, h - 0.5]]]) + [x, y, 0]
    crown_f = np.concatenate([np.stack([i, j, np.full(segments, segments)], 1), np.stack([j, i, np.full(segments, segments + 1)], 1)])
    green = np.array([0.08, 0.25, 0.06]) * rng.uniform(0.7, 1.3)
    return TriangleMesh.concat(
        [TriangleMesh.build(trunk_v, trunk_f, (0.2, 0.13, 0.08), Material.VEGETATION), TriangleMesh.build(crown_v, crown_f, green, Material.VEGETATION)]
    )


def wheel(x, y, yaw, instance, segments=12, radius=0.35, width=0.25) -> TriangleMesh:
    """Dark cylinder (axis along the car's lateral axis) standing on the ground at (x, y)."""
    ang = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([radius * np.cos(ang), np.zeros(segments), radius * np.sin(ang) + radius], 1)
    v = np.concatenate([ring - [0, width / 2, 0], ring + [0, width / 2, 0], [[0, -width / 2, radius], [0, width / 2, radius]]])
    i = np.arange(segments)
    j = (i + 1) % segments
    f = np.concatenate(
        [
            np.stack([i, j, j + segments], 1),
            np.stack([i, j + segments, i + segments], 1),
            np.stack([j, i, np.full(segments, 2 * segments)], 1),
            np.stack([i + segments, j + segments, np.full(segments, 2 * segments + 1)], 1),
        ]
    )
    c, s = np.cos(yaw), np.sin(yaw)
    v = v @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]).T + [x, y, 0]
    return TriangleMesh.build(v, f, (0.03, 0.03, 0.03), Material.VEHICLE_BODY, instance)


def build_scene(seed: int = 0):
    """(static mesh, street-lamp lights, dynamic mesh) of the benchmark town around the origin."""
    rng = np.random.default_rng(seed)
    parts = [grid(-250, 250, -250, 250, 0.0, 50, 50, (0.16, 0.24, 0.08), Material.TERRAIN)]
    lamps = []
    quarter_turn = np.array([[0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    for axis in (0, 1):
        def oriented(m: TriangleMesh, axis: int = axis) -> TriangleMesh:
            return m if axis == 0 else m.transformed(quarter_turn)

        parts.append(oriented(grid(-250, 250, -6, 6, 0.02 + 0.005 * axis, 100, 2, (0.06, 0.06, 0.065), Material.ROAD)))
        for side in (-1, 1):
            parts.append(oriented(grid(-250, 250, side * 6 if side > 0 else -9, 9 if side > 0 else -6, 0.15, 100, 1, (0.32, 0.31, 0.3), Material.SIDEWALK)))
        for x in np.arange(-246, 246, 6.0):
            if abs(x) > 10:
                parts.append(oriented(grid(x, x + 3, -0.08, 0.08, 0.035, 1, 1, (0.75, 0.75, 0.7), Material.LANE_MARKING)))
        for x in np.arange(-240, 240, 30.0):
            if abs(x) < 12:
                continue
            parts.append(oriented(box((x, 7.5, 0), (0.2, 0.2, 7.0), 0.0, (0.3, 0.3, 0.32), Material.POLE)))
            parts.append(oriented(box((x, 6.9, 6.8), (0.5, 1.4, 0.2), 0.0, (1.0, 0.85, 0.6), Material.LAMP, 0, 1.0)))
            pos = np.array([x, 6.7, 6.7]) if axis == 0 else np.array([-6.7, x, 6.7])
            lamps.append(street_lamp(pos))
    for _ in range(100):
        while True:
            x, y = rng.uniform(-200, 200, 2)
            if min(abs(x), abs(y)) > 18:
                break
        size = (rng.uniform(10, 18), rng.uniform(10, 18), rng.uniform(6, 30))
        parts.append(facade_building(x, y, size, rng.uniform(0.3, 0.7, 3) * [1.0, 0.95, 0.85], rng))
    for _ in range(300):
        while True:
            x, y = rng.uniform(-200, 200, 2)
            if min(abs(x), abs(y)) > 10:
                break
        parts.append(tree(x, y, rng))
    static = TriangleMesh.concat(parts)

    agents = []
    for k in range(40):
        along = rng.uniform(-120, 120)
        lane = rng.choice([-3.0, 3.0])
        if k % 2 == 0 and lane < 0 and -80 < along < -20:
            along += 60.0  # keep the ego's stretch of lane free
        yaw = 0.0 if lane < 0 else np.pi
        x, y = (along, lane) if k % 2 == 0 else (lane, along)
        yaw = yaw if k % 2 == 0 else yaw + np.pi / 2
        col = rng.uniform(0.05, 0.8, 3)
        agents.append(box((x, y, 0.35), (4.4, 1.85, 1.1), yaw, col, Material.VEHICLE_BODY, k + 1))
        agents.append(box((x, y, 1.45), (2.3, 1.7, 0.55), yaw, (0.05, 0.06, 0.08), Material.VEHICLE_GLASS, k + 1))
        for dx in (-1.4, 1.4):
            for dy in (-0.85, 0.85):
                c, s = np.cos(yaw), np.sin(yaw)
                agents.append(wheel(x + c * dx - s * dy, y + s * dx + c * dy, yaw, k + 1))
    for k in range(30):
        x, y = rng.uniform(-100, 100), rng.choice([-7.5, 7.5])
        agents.append(box((x, y, 0.15), (0.45, 0.55, 1.7), rng.uniform(0, 6.28), rng.uniform(0.1, 0.6, 3), Material.PEDESTRIAN, 100 + k))
    dynamic = TriangleMesh.concat(agents)
    return static, lamps, dynamic


def build_simple_scene(seed: int = 0):
    """A small scene (~600 triangles): ground, one road, 20 box buildings, 10 box cars, 4 lamps."""
    rng = np.random.default_rng(seed)
    parts = [grid(-150, 150, -150, 150, 0.0, 4, 4, (0.16, 0.24, 0.08), Material.TERRAIN)]
    parts.append(grid(-150, 150, -6, 6, 0.02, 10, 1, (0.06, 0.06, 0.065), Material.ROAD))
    for x in np.linspace(-100, 100, 10):
        for side in (-1, 1):
            parts.append(box((x, side * 20, 0), (14, 12, rng.uniform(6, 25)), 0.0, rng.uniform(0.3, 0.7, 3), Material.BUILDING))
    lamps = [street_lamp((x, 6.7, 6.7)) for x in (-45.0, -15.0, 15.0, 45.0)]
    cars = [box((x, rng.choice([-3.0, 3.0]), 0.35), (4.4, 1.85, 1.4), 0.0, rng.uniform(0.05, 0.8, 3), Material.VEHICLE_BODY, k + 1) for k, x in enumerate(np.linspace(-20, 80, 10))]
    return TriangleMesh.concat(parts), lamps, TriangleMesh.concat(cars)


def rig_views(width: int, height: int, ego_to_global: np.ndarray) -> list[CameraView]:
    """The six nuScenes-like cameras of an ego at ``ego_to_global``, for images of width x height."""
    views = []
    scale = width / 1600.0
    for channel, yaw_deg, focal, t in RIG:
        yaw = np.deg2rad(yaw_deg)
        # camera axes in the ego frame: x right, y down, z forward
        r = np.stack([[np.sin(yaw), -np.cos(yaw), 0.0], [0.0, 0.0, -1.0], [np.cos(yaw), np.sin(yaw), 0.0]], axis=1)
        cam_to_ego = np.eye(4)
        cam_to_ego[:3, :3], cam_to_ego[:3, 3] = r, t
        k = np.array([[focal * scale, 0, width / 2], [0, focal * scale, height / 2], [0, 0, 1.0]])
        views.append(CameraView(channel, k, ego_to_global @ cam_to_ego, width, height))
    return views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--lightings", nargs="+", default=["day", "night", "rain"], choices=["day", "dusk", "night", "fog", "rain"])
    parser.add_argument("--scene", default="town", choices=["town", "simple"], help="town: ~52k triangles; simple: ~600")
    parser.add_argument("--frames", type=int, default=10, help="timed frames per configuration (after 2 warm-up frames)")
    parser.add_argument("--shadow-map", type=int, default=None, help="shadow-map texels per side (default: the Rasterizer's choice)")
    args = parser.parse_args()

    load_before = os.getloadavg()
    static, lamps, dynamic = build_scene() if args.scene == "town" else build_simple_scene()
    print(f"scene {args.scene}: {static.num_faces} static + {dynamic.num_faces} dynamic triangles, {len(lamps)} street lamps")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    rows = []
    configs = [(s, lt) for s in args.sizes for lt in args.lightings]
    rasterizers: dict[str, Rasterizer] = {}
    try:
        for size, lighting_name in tqdm(configs, desc="configs"):
            w, h = SIZES[size]
            if size not in rasterizers:
                rasterizers[size] = Rasterizer(w, h, shadow_map_size=args.shadow_map)
                tqdm.write(f"{size}: {rasterizers[size].gl_renderer}, shadow map {rasterizers[size].shadow_map_size}^2")
                rasterizers[size].set_static(static)
            rast = rasterizers[size]
            times, cpu_times = [], []
            for frame in range(args.frames + 2):
                ego = np.eye(4)
                ego[:3, 3] = (-60.0 + 1.5 * frame, -3.0, 0.0)  # driving along the x road
                base = LIGHTING_PRESETS["night" if lighting_name == "night" else ("dusk" if lighting_name == "dusk" else "day")]
                lighting = with_weather(base, lighting_name) if lighting_name in ("rain", "fog") else base
                if lighting_name == "night":
                    lighting = lighting.with_lights(lamps + list(headlights(ego)))
                moved = dynamic.transformed(np.array([[1, 0, 0, 0.3 * frame], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]))
                t0, c0 = time.perf_counter(), time.process_time()
                out = rast.render(rig_views(w, h, ego), moved, lighting, rain_seed=frame)
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
                if frame >= 2:
                    times.append(dt)
                    cpu_times.append(dc)
            assert out.rgb.shape == (6, h, w, 3)
            ms, cpu = np.array(times) * 1e3, np.array(cpu_times) * 1e3
            rows.append((size, f"{w}x{h}", lighting_name, float(np.median(ms)), float(np.min(ms)), float(np.median(cpu))))
    finally:
        for rast in rasterizers.values():
            rast.close()
    print(f"\nload average before/after: {load_before} / {os.getloadavg()}")
    print("\n| size | resolution | lighting | wall ms / 6-view frame (median) | min | CPU ms / frame (median, all threads) | wall ms / view |")
    print("|---|---|---|---|---|---|---|")
    for size, res, name, med, mn, cpu in rows:
        print(f"| {size} | {res} | {name} | {med:.1f} | {mn:.1f} | {cpu:.1f} | {med / 6:.1f} |")


if __name__ == "__main__":
    main()
