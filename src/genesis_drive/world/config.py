"""Typed configuration of SynthTown and its named presets (``tiny``, ``full``).

Units: metres, seconds, metres per second, degrees only where a field name says ``_deg``.
Every config is a frozen dataclass; presets are plain functions in :data:`PRESETS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError

__all__ = [
    "FAULT_KINDS",
    "PRESETS",
    "AppearanceConfig",
    "CameraConfig",
    "FaultConfig",
    "FaultRate",
    "LidarConfig",
    "RoadConfig",
    "SceneryConfig",
    "TrafficConfig",
    "WorldConfig",
    "preset",
]


@dataclass(frozen=True)
class RoadConfig:
    """Procedural road network: a jittered grid of junctions joined by curved two-way roads."""

    grid: tuple[int, int] = (3, 3)  # junctions along x, y
    spacing: tuple[float, float] = (85.0, 125.0)  # metres between neighbouring junctions (min, max)
    jitter: float = 10.0  # metres of random junction displacement
    drop_edge_prob: float = 0.3  # chance to remove a grid road (makes 3-way junctions and bends)
    curve: float = 0.1  # max lateral Bezier control offset, as a fraction of the road length
    lane_width: float = 3.5
    two_lane_prob: float = 0.3  # chance that a road has two lanes per direction
    parking_prob: float = 0.6  # chance that a road has parking shoulders on both sides
    shoulder_width: float = 2.5
    sidewalk_width: float = 3.2
    kerb_height: float = 0.15
    corner_radius: float = 4.0  # kerb fillet radius at junction corners
    crossing_width: float = 3.0
    speed_limit: tuple[float, float] = (10.0, 13.5)  # m/s, drawn per road
    margin: float = 220.0  # metres of scenery/terrain around the network (keeps the map at x, y > 0)


@dataclass(frozen=True)
class SceneryConfig:
    """Buildings, street furniture, trees and parked vehicles."""

    building_setback: tuple[float, float] = (1.0, 4.0)  # metres behind the sidewalk
    building_frontage: tuple[float, float] = (9.0, 26.0)
    building_depth: tuple[float, float] = (9.0, 22.0)
    building_height: tuple[float, float] = (6.0, 36.0)
    building_gap: tuple[float, float] = (0.0, 7.0)
    lamp_spacing: float = 28.0  # metres between street lamps along a kerb
    tree_spacing: float = 14.0  # metres between street trees (each skipped with prob 0.4)
    park_tree_density: float = 0.0025  # trees per m^2 of open block ground
    parked_spacing: tuple[float, float] = (5.8, 12.0)  # bumper-to-bumper pitch of parked cars
    parked_fill: float = 0.7  # fraction of parking slots occupied
    cone_groups_per_km: float = 6.0  # construction zones (cones + barriers) per km of road


@dataclass(frozen=True)
class TrafficConfig:
    """Moving agents. Densities are per km of lane (vehicles) or per km of sidewalk (pedestrians)."""

    vehicles_per_km: float = 18.0
    truck_fraction: float = 0.08
    bus_fraction: float = 0.05
    cyclists_per_km: float = 2.5
    pedestrians_per_km: float = 30.0
    child_fraction: float = 0.12
    standing_fraction: float = 0.25  # pedestrians that stand still (waiting, chatting)
    crossing_prob: float = 0.5  # chance a walker takes a crossing it reaches
    ego_speed: tuple[float, float] = (8.0, 12.0)  # m/s desired speed of the ego car
    preroll: float = 6.0  # seconds simulated before recording starts
    sim_hz: int = 60  # simulation clock; camera, LiDAR and keyframe rates must divide it


@dataclass(frozen=True)
class CameraConfig:
    """The six-camera nuScenes rig, rendered at ``image_size`` (intrinsics scaled from 1600x900)."""

    image_size: tuple[int, int] = (1600, 900)  # (width, height) pixels
    rate_hz: int = 12
    shadow_map_size: int = 2048  # sun shadow-map texels per side (0 = no sun shadows)


@dataclass(frozen=True)
class LidarConfig:
    """nuScenes-like 32-beam spinning LiDAR (LIDAR_TOP).

    Elevations: ``beams`` angles evenly from ``elevation_deg[0]`` (ring 0, top) to
    ``elevation_deg[1]`` (last ring, bottom). ``azimuth_steps`` firings per revolution.
    Ray drop: probability ``drop_base + drop_far * (r / max_range)^2`` plus ``drop_grazing`` at
    grazing incidence, and ``drop_glass`` on glass. Range noise: Gaussian, ``range_noise`` metres.
    ``rolling``: each firing uses the ego pose at its own time within the sweep.
    """

    beams: int = 32
    elevation_deg: tuple[float, float] = (10.67, -30.67)
    azimuth_steps: int = 1084
    rate_hz: int = 20
    min_range: float = 1.0
    max_range: float = 70.0
    range_noise: float = 0.015
    drop_base: float = 0.02
    drop_far: float = 0.1
    drop_grazing: float = 0.5
    drop_glass: float = 0.6
    rolling: bool = True


FAULT_KINDS = ("motion_blur", "overexposure", "backlight", "lens_dirt", "occlusion", "dropped_frame")


@dataclass(frozen=True)
class FaultRate:
    """How often one fault kind is injected.

    per = "frame": each camera image independently has the fault with probability ``rate``.
    per = "clip": each (scene, camera) pair independently has it, on every image, with
    probability ``rate`` (lens dirt and occlusions stay on the lens for the whole scene).
    """

    kind: str
    rate: float
    per: str = "frame"

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ConfigError(f"FaultRate.kind must be one of {FAULT_KINDS}, got {self.kind!r}")
        if not 0.0 <= self.rate <= 1.0:
            raise ConfigError(f"FaultRate.rate must lie in [0, 1], got {self.rate!r}")
        if self.per not in ("frame", "clip"):
            raise ConfigError(f"FaultRate.per must be 'frame' or 'clip', got {self.per!r}")


def _default_faults() -> tuple[FaultRate, ...]:
    return (
        FaultRate("motion_blur", 0.03),
        FaultRate("overexposure", 0.02),
        FaultRate("backlight", 0.02),
        FaultRate("dropped_frame", 0.01),
        FaultRate("lens_dirt", 0.05, per="clip"),
        FaultRate("occlusion", 0.03, per="clip"),
    )


@dataclass(frozen=True)
class FaultConfig:
    """Sensor faults injected into camera images (ground truth in the ``synthtown_fault`` table)."""

    rates: tuple[FaultRate, ...] = field(default_factory=_default_faults)

    def __post_init__(self) -> None:
        kinds = [r.kind for r in self.rates]
        if len(set(kinds)) != len(kinds):
            raise ConfigError(f"FaultConfig.rates lists a kind twice: {kinds}")


@dataclass(frozen=True)
class AppearanceConfig:
    """Per-scene time of day and weather, drawn with these weights."""

    time_of_day: tuple[tuple[str, float], ...] = (("day", 0.6), ("dusk", 0.2), ("night", 0.2))
    weather: tuple[tuple[str, float], ...] = (("clear", 0.6), ("rain", 0.2), ("fog", 0.2))


@dataclass(frozen=True)
class WorldConfig:
    """Everything a SynthTown generation run needs.

    scene_seconds: recorded length of each scene (nuScenes: 20 s). keyframe_hz: annotated samples
    per second (nuScenes: 2). annotation_range: metres (x-y distance from the ego) within which
    observed objects are annotated. write_buffers: keep per-keyframe-camera depth / instance /
    material buffers as ``synthtown/buffers/...npz`` files.
    """

    name: str = "custom"
    num_scenes: int = 2
    scene_seconds: float = 20.0
    keyframe_hz: int = 2
    seed: int = 0
    version: str = "v1.0-trainval"
    annotation_range: float = 55.0
    write_buffers: bool = True
    roads: RoadConfig = field(default_factory=RoadConfig)
    scenery: SceneryConfig = field(default_factory=SceneryConfig)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    lidar: LidarConfig = field(default_factory=LidarConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)

    def __post_init__(self) -> None:
        hz = self.traffic.sim_hz
        for name, rate in (("camera.rate_hz", self.camera.rate_hz), ("lidar.rate_hz", self.lidar.rate_hz), ("keyframe_hz", self.keyframe_hz)):
            if rate <= 0 or hz % rate:
                raise ConfigError(f"WorldConfig.{name}={rate} must divide traffic.sim_hz={hz}")
        for name, rate in (("camera.rate_hz", self.camera.rate_hz), ("lidar.rate_hz", self.lidar.rate_hz)):
            if rate % self.keyframe_hz:
                raise ConfigError(f"WorldConfig.{name}={rate} must be a multiple of keyframe_hz={self.keyframe_hz}")
        if self.num_scenes < 1:
            raise ConfigError(f"WorldConfig.num_scenes must be >= 1, got {self.num_scenes}")
        if self.scene_seconds * self.keyframe_hz < 1:
            raise ConfigError(f"WorldConfig.scene_seconds={self.scene_seconds} gives no keyframe at {self.keyframe_hz} Hz")
        w, h = self.camera.image_size
        if w < 16 or h < 16:
            raise ConfigError(f"WorldConfig.camera.image_size must be at least 16x16 pixels, got {w}x{h}")


def tiny() -> WorldConfig:
    """CPU-test size: 2 scenes x 4 s, 256x144 cameras, 32 x 360 LiDAR rays, small towns."""
    return WorldConfig(
        name="tiny",
        num_scenes=2,
        scene_seconds=4.0,
        roads=RoadConfig(grid=(3, 3), spacing=(80.0, 100.0)),
        traffic=TrafficConfig(preroll=4.0),
        camera=CameraConfig(image_size=(256, 144), shadow_map_size=1024),
        lidar=LidarConfig(azimuth_steps=360),
    )


def full() -> WorldConfig:
    """Training split: 20 scenes x 20 s (nuScenes length), 400x224 cameras, full 32 x 1084 LiDAR."""
    return WorldConfig(
        name="full",
        num_scenes=20,
        scene_seconds=20.0,
        roads=RoadConfig(grid=(4, 4)),
        camera=CameraConfig(image_size=(400, 224)),
        lidar=LidarConfig(azimuth_steps=1084),
    )


PRESETS = {"tiny": tiny, "full": full}


def preset(name: str) -> WorldConfig:
    """The named preset's config; raises :class:`ConfigError` for an unknown name."""
    if name not in PRESETS:
        raise ConfigError(f"unknown SynthTown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]()

