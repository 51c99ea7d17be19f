"""Lighting of SynthTown's camera renderer: sun, sky, fog, weather and local lights.

All colours are *linear* RGB (the renderer converts to sRGB at the end). Directions and positions are
in the global frame (metres, z up). Radiometry is deliberately simple and unit-free:

* a surface of albedo ``a`` whose normal makes angle ``theta`` with the sun direction reflects
  ``a * sun_color * cos(theta)`` (no 1/pi), plus ``a * ambient`` from the sky hemisphere;
* a local :class:`Light` of colour ``c`` irradiates a surface at distance ``d`` metres with
  ``c / max(d^2, 0.25)``, smoothly windowed to zero at ``range`` metres and, for spot lights,
  between the inner and outer cone half-angles;
* the display value is the tone curve ``x (1 + x / 9) / (1 + x)`` (extended Reinhard, white at
  ``x = 3``) of ``x = exposure * radiance``, then sRGB-encoded.

Named presets live in :data:`LIGHTING_PRESETS` (``day``, ``dusk``, ``night``); weather is applied on
top with :func:`with_weather` (``clear``, ``rain``, ``fog``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from genesis_drive.errors import ConfigError

__all__ = [
    "LIGHTING_PRESETS",
    "WEATHERS",
    "Light",
    "Lighting",
    "day",
    "dusk",
    "headlights",
    "night",
    "street_lamp",
    "sun_direction",
    "with_weather",
]

WEATHERS = ("clear", "rain", "fog")


def _vec3(value, name: str, owner: str) -> np.ndarray:
    """A read-only float64 copy (3,) of ``value`` (presets are shared, so their arrays are frozen)."""
    a = np.array(value, dtype=np.float64).reshape(-1)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise ValueError(f"{owner}.{name} must be 3 finite numbers, got {value!r}")
    a.setflags(write=False)
    return a


def _unit3(value, name: str, owner: str) -> np.ndarray:
    a = _vec3(value, name, owner)
    n = np.linalg.norm(a)
    if n < 1e-9:
        raise ValueError(f"{owner}.{name} must be a non-zero direction, got {value!r}")
    a = a / n
    a.setflags(write=False)
    return a


def sun_direction(azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector (3,) *towards* the sun in the global frame.

    ``azimuth``: radians counter-clockwise from +x seen from above; ``elevation``: radians above the
    horizon (negative = below).
    """
    ce = np.cos(elevation)
    return np.array([ce * np.cos(azimuth), ce * np.sin(azimuth), np.sin(elevation)])


@dataclass(frozen=True, eq=False)
class Light:
    """A local light (street lamp, headlight, lit window) in the global frame.

    position: (3,) metres. color: (3,) linear RGB intensity (irradiance at 1 m).
    range: metres where the light has faded to zero. direction: (3,) unit axis of a spot light, or
    None for a point light shining everywhere. inner_angle / outer_angle: spot cone half-angles in
    radians (full intensity inside ``inner_angle``, zero outside ``outer_angle``).
    """

    position: np.ndarray
    color: np.ndarray
    range: float = 20.0
    direction: np.ndarray | None = None
    inner_angle: float = 0.5
    outer_angle: float = 0.8

    def __post_init__(self) -> None:
        object.__setattr__(self, "position", _vec3(self.position, "position", "Light"))
        object.__setattr__(self, "color", _vec3(self.color, "color", "Light"))
        if self.direction is not None:
            object.__setattr__(self, "direction", _unit3(self.direction, "direction", "Light"))
        if not (np.isfinite(self.range) and self.range > 0):
            raise ValueError(f"Light.range must be > 0 metres, got {self.range!r}")
        if not (0 <= self.inner_angle <= self.outer_angle <= np.pi):
            raise ValueError(
                f"Light cone must satisfy 0 <= inner_angle <= outer_angle <= pi radians, "
                f"got inner={self.inner_angle!r}, outer={self.outer_angle!r}"
            )

    @property
    def is_spot(self) -> bool:
        return self.direction is not None


@dataclass(frozen=True, eq=False)
class Lighting:
    """Everything the renderer needs to light and tone-map a frame (see the module docstring).

    sun_direction: (3,) unit vector towards the sun (or moon), global frame.
    sun_color: (3,) linear RGB irradiance of the sun on a surface facing it.
    ambient / ground_ambient: (3,) linear irradiance from the sky / from the ground hemisphere
        (a surface facing up gets ``ambient``, facing down ``ground_ambient``, vertical the mean).
    sky_horizon / sky_zenith: (3,) linear radiance of the sky gradient background.
    sun_disc: radiance multiplier of the visible sun disc (0 hides it).
    exposure: scale applied to radiance before the tone curve.
    fog_density: 1/m extinction of the distance fog (``exp(-density * distance)``).
    fog_color: (3,) linear radiance that distant surfaces fade to.
    fog_height: metres of fog layer assumed above the ground when fogging the sky.
    emissive_gain: radiance of a face with ``face_emissive == 1`` is ``albedo * emissive_gain``.
    wetness: 0..1, wet-road darkening and specular sheen on road-like materials.
    rain: 0..1 opacity of the screen-space rain streak overlay.
    shadow_strength: 0..1, how much of the sun light shadowed surfaces lose.
    lights: local lights (street lamps, headlights).
    """

    name: str
    sun_direction: np.ndarray
    sun_color: np.ndarray
    ambient: np.ndarray
    ground_ambient: np.ndarray
    sky_horizon: np.ndarray
    sky_zenith: np.ndarray
    sun_disc: float = 30.0
    exposure: float = 1.0
    fog_density: float = 0.0
    fog_color: np.ndarray = field(default_factory=lambda: np.array([0.6, 0.65, 0.7]))
    fog_height: float = 120.0
    emissive_gain: float = 1.0
    wetness: float = 0.0
    rain: float = 0.0
    shadow_strength: float = 1.0
    lights: tuple[Light, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "sun_direction", _unit3(self.sun_direction, "sun_direction", "Lighting"))
        for name in ("sun_color", "ambient", "ground_ambient", "sky_horizon", "sky_zenith", "fog_color"):
            a = _vec3(getattr(self, name), name, "Lighting")
            if np.any(a < 0):
                raise ValueError(f"Lighting.{name} must be non-negative linear RGB, got {a.tolist()}")
            object.__setattr__(self, name, a)
        for name in ("sun_disc", "exposure", "fog_density", "fog_height", "emissive_gain"):
            v = float(getattr(self, name))
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"Lighting.{name} must be a finite number >= 0, got {v!r}")
            object.__setattr__(self, name, v)
        for name in ("wetness", "rain", "shadow_strength"):
            v = float(getattr(self, name))
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"Lighting.{name} must lie in [0, 1], got {v!r}")
            object.__setattr__(self, name, v)
        lights = tuple(self.lights)
        for i, light in enumerate(lights):
            if not isinstance(light, Light):
                raise TypeError(f"Lighting.lights[{i}] must be a Light, got {type(light).__name__}")
        object.__setattr__(self, "lights", lights)

    def with_lights(self, lights) -> Lighting:
        """The same lighting with ``lights`` appended (e.g. this frame's headlights)."""
        return dataclasses.replace(self, lights=self.lights + tuple(lights))


def day() -> Lighting:
    """Clear midday: high white sun, blue sky, light haze."""
    return Lighting(
        name="day",
        sun_direction=sun_direction(np.deg2rad(135.0), np.deg2rad(52.0)),
        sun_color=np.array([2.3, 2.2, 2.0]),
        ambient=np.array([0.42, 0.5, 0.62]),
        ground_ambient=np.array([0.22, 0.21, 0.19]),
        sky_horizon=np.array([0.55, 0.7, 0.92]),
        sky_zenith=np.array([0.1, 0.24, 0.72]),
        sun_disc=30.0,
        exposure=1.0,
        fog_density=0.0015,
        fog_color=np.array([0.58, 0.68, 0.84]),
        emissive_gain=0.6,
    )


def dusk() -> Lighting:
    """Sunset: low warm sun, orange horizon, violet zenith, long shadows, lamps coming on."""
    return Lighting(
        name="dusk",
        sun_direction=sun_direction(np.deg2rad(250.0), np.deg2rad(7.0)),
        sun_color=np.array([1.9, 0.95, 0.42]),
        ambient=np.array([0.2, 0.17, 0.24]),
        ground_ambient=np.array([0.1, 0.07, 0.06]),
        sky_horizon=np.array([1.0, 0.5, 0.22]),
        sky_zenith=np.array([0.1, 0.1, 0.3]),
        sun_disc=20.0,
        exposure=1.5,
        fog_density=0.003,
        fog_color=np.array([0.65, 0.42, 0.3]),
        emissive_gain=2.0,
    )


def night() -> Lighting:
    """Night: dim blue moonlight, dark sky, bright emissive lamps; add street lamps / headlights."""
    return Lighting(
        name="night",
        sun_direction=sun_direction(np.deg2rad(40.0), np.deg2rad(38.0)),
        sun_color=np.array([0.02, 0.024, 0.036]),
        ambient=np.array([0.005, 0.006, 0.01]),
        ground_ambient=np.array([0.002, 0.002, 0.003]),
        sky_horizon=np.array([0.005, 0.0055, 0.009]),
        sky_zenith=np.array([0.0006, 0.0008, 0.002]),
        sun_disc=40.0,
        exposure=4.0,
        fog_density=0.003,
        fog_color=np.array([0.004, 0.0045, 0.007]),
        emissive_gain=4.0,
        shadow_strength=0.6,
    )


LIGHTING_PRESETS = {"day": day(), "dusk": dusk(), "night": night()}


def _luminance(rgb: np.ndarray) -> float:
    return float(np.dot(rgb, [0.2126, 0.7152, 0.0722]))


def with_weather(lighting: Lighting, weather: str) -> Lighting:
    """``lighting`` under ``weather`` in {"clear", "rain", "fog"}.

    clear: unchanged. rain: overcast (dimmer, diffuse sun, grey sky), wet roads, haze and rain
    streaks. fog: thick grey fog (contrast falls to 5% at 3/0.035 = 85 m), sun mostly hidden, damp
    roads. Apply it once, to a clear preset (weathers do not compose).
    """
    if weather not in WEATHERS:
        raise ConfigError(f"unknown weather {weather!r}; expected one of {', '.join(WEATHERS)}")
    if weather == "clear":
        return lighting
    grey_sky = np.full(3, _luminance(lighting.sky_horizon))
    if weather == "rain":
        overcast = 0.45 * (0.35 * lighting.sky_horizon + 0.65 * grey_sky)
        return dataclasses.replace(
            lighting,
            name=f"{lighting.name}+rain",
            sun_color=lighting.sun_color * 0.2,
            ambient=lighting.ambient * 0.55 + 0.25 * lighting.sun_color * 0.3,
            ground_ambient=lighting.ground_ambient * 0.6,
            sky_horizon=overcast,
            sky_zenith=overcast * 0.8,
            sun_disc=0.0,
            fog_density=max(lighting.fog_density, 0.008),
            fog_color=overcast * 0.95,
            wetness=0.85,
            rain=1.0,
            shadow_strength=0.3,
        )
    fog_grey = 0.75 * grey_sky + 0.25 * lighting.sky_horizon
    return dataclasses.replace(
        lighting,
        name=f"{lighting.name}+fog",
        sun_color=lighting.sun_color * 0.15,
        ambient=lighting.ambient * 0.7 + 0.3 * fog_grey,
        ground_ambient=lighting.ground_ambient * 0.8,
        sky_horizon=fog_grey,
        sky_zenith=fog_grey * 0.9,
        sun_disc=0.0,
        fog_density=0.035,
        fog_color=fog_grey,
        fog_height=300.0,
        wetness=0.15,
        shadow_strength=0.2,
    )


def street_lamp(head_position, color=(18.0, 14.0, 9.0), range: float = 24.0) -> Light:
    """A sodium-ish street lamp: a wide downward spot at the lamp head (global position, metres)."""
    return Light(
        position=head_position,
        color=color,
        range=range,
        direction=(0.0, 0.0, -1.0),
        inner_angle=np.deg2rad(45.0),
        outer_angle=np.deg2rad(75.0),
    )


def headlights(
    ego_to_global: np.ndarray,
    color=(20.0, 19.0, 16.5),
    range: float = 60.0,
    front_x: float = 3.7,
    half_track: float = 0.7,
    height: float = 0.7,
    pitch_down: float = np.deg2rad(2.5),
) -> tuple[Light, Light]:
    """The two low-beam headlights of a car whose ego frame (x forward, y left, z up, metres)
    maps to the global frame by the 4x4 ``ego_to_global``. Lamps sit at (front_x, +-half_track,
    height) in the ego frame, aim forward tilted down by ``pitch_down`` radians."""
    m = np.asarray(ego_to_global, dtype=np.float64)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise ValueError(f"headlights: ego_to_global must be a finite 4x4 matrix, got shape {m.shape}")
    axis = m[:3, :3] @ np.array([np.cos(pitch_down), 0.0, -np.sin(pitch_down)])
    return tuple(
        Light(
            position=m[:3, :3] @ np.array([front_x, side * half_track, height]) + m[:3, 3],
            color=color,
            range=range,
            direction=axis,
            inner_angle=np.deg2rad(10.0),
            outer_angle=np.deg2rad(28.0),
        )
        for side in (1.0, -1.0)
    )
