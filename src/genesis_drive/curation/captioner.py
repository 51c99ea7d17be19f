"""Hierarchical clip captions from annotations, the map and image statistics (the offline backend).

The global part (time of day, weather, road and lanes, surroundings, traffic, ego motion) comes
from frame-0 image statistics of all views, the clip's map (:mod:`.road`) and its boxes; the
scene description, when it names a time of day or weather, overrides the image guess (annotators
beat statistics). Each camera gets instance-level entries for the boxes visible in it at frame 0
(class, colour from the pixels inside the projected box, size, distance and direction from the ego,
motion over the clip). Output follows :mod:`.caption_schema`.

Backends implement the :class:`Captioner` protocol; :class:`OfflineCaptioner` is the default and
the VLM backend lives in :mod:`.vlm`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..data.geometry import project_points, transform_points
from ..data.schema import Box3D, Clip
from .caption_schema import CAPTION_SCHEMA, camera_text, global_sentence, render_text
from .colour import colour_name
from .image_quality import dark_channel_haze, downscale, luminance, saturation
from .road import RoadConfig, road_facts

__all__ = [
    "TYPICAL_SIZES",
    "CaptionConfig",
    "CaptionContext",
    "Captioner",
    "OfflineCaptioner",
    "class_noun",
    "position_bucket",
]

#: Typical (width, length, height) in metres per detection class (about the nuScenes means).
TYPICAL_SIZES: dict[str, tuple[float, float, float]] = {
    "car": (1.95, 4.6, 1.73),
    "truck": (2.5, 6.9, 2.8),
    "bus": (2.95, 11.0, 3.5),
    "trailer": (2.9, 12.3, 3.9),
    "construction_vehicle": (2.8, 6.4, 3.2),
    "pedestrian": (0.67, 0.73, 1.77),
    "motorcycle": (0.77, 2.1, 1.45),
    "bicycle": (0.6, 1.7, 1.3),
    "traffic_cone": (0.41, 0.41, 1.07),
    "barrier": (2.5, 0.5, 1.0),
}
_NOUNS = {
    "vehicle.emergency.police": "police car",
    "vehicle.emergency.ambulance": "ambulance",
    "vehicle.construction": "construction vehicle",
    "vehicle.bus.rigid": "bus",
    "vehicle.bus.bendy": "articulated bus",
    "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "child",
    "human.pedestrian.construction_worker": "construction worker",
    "human.pedestrian.police_officer": "police officer",
    "human.pedestrian.personal_mobility": "person on a scooter",
    "human.pedestrian.stroller": "stroller",
    "human.pedestrian.wheelchair": "wheelchair user",
    "movable_object.trafficcone": "traffic cone",
    "movable_object.pushable_pullable": "cart",
    "static_object.bicycle_rack": "bicycle rack",
}
_STATIC_PREFIXES = ("movable_object.", "static_object.")
_VEHICLE_CLASSES = {"car", "truck", "bus", "trailer", "construction_vehicle", "motorcycle"}
_TIME_KEYWORDS = (("night", "night"), ("dusk", "dusk"), ("dawn", "dusk"), ("sunset", "dusk"), ("sunrise", "dusk"), ("twilight", "dusk"))
_WEATHER_KEYWORDS = (("rain", "rain"), ("fog", "fog"), ("mist", "fog"), ("snow", "snow"), ("overcast", "overcast"), ("cloudy", "overcast"), ("sunny", "clear"), ("clear", "clear"))


def class_noun(box: Box3D) -> str:
    """The noun for a box: its category's plain name, "cyclist"/"motorcyclist" with a rider."""
    cat = box.category
    if cat in ("vehicle.bicycle", "vehicle.motorcycle"):
        base = cat.split(".")[1]
        return ("cyclist" if base == "bicycle" else "motorcyclist") if "cycle.with_rider" in box.attributes else base
    if cat in _NOUNS:
        return _NOUNS[cat]
    return cat.split(".")[-1].replace("_", " ")


def position_bucket(bearing_deg: float) -> str:
    """One of 8 directions around the ego for a bearing (degrees CCW from ahead, + = left)."""
    names = ("front", "front-left", "left", "rear-left", "rear", "rear-right", "right", "front-right")
    return names[int(np.floor(((bearing_deg + 22.5) % 360.0) / 45.0)) % 8]


def _keyword(text: str, table: tuple[tuple[str, str], ...]) -> str | None:
    low = text.lower()
    for word, value in table:
        if re.search(rf"\b{word}", low):
            return value
    return None


@dataclass(frozen=True)
class CaptionContext:
    """What the dataset knows beyond the clip: the scene's free-text description and map location."""

    scene_description: str = ""
    location: str = ""


@dataclass(frozen=True)
class CaptionConfig:
    """Offline captioner settings.

    Distances in metres, speeds m/s, yaw rate rad/s; brightness/contrast/haze/saturation are the
    frame-0 means over views in [0, 1] (:mod:`.image_quality`); box area in pixels. The time and
    weather thresholds were set on SynthTown renders (day 0.42-0.58 mean luma, night about 0.22;
    fog: dark-channel haze about 0.57 at contrast 0.09); real cameras with other exposure control
    may need others.
    """

    max_instances_per_camera: int = 6
    max_distance: float = 60.0
    min_box_pixels: float = 64.0
    traffic_radius: float = 50.0
    night_below: float = 0.28
    dusk_below: float = 0.38
    fog_haze_above: float = 0.45
    fog_contrast_below: float = 0.12
    overcast_sky_saturation_below: float = 0.12
    still_speed: float = 0.5
    turn_yaw_rate: float = 0.12
    small_volume_ratio: float = 0.6
    large_volume_ratio: float = 1.6
    analysis_width: int = 320
    road: RoadConfig = RoadConfig()


class Captioner(Protocol):
    """A caption backend: ``caption(clip, context) -> dict`` following :mod:`.caption_schema`."""

    name: str

    def caption(self, clip: Clip, context: CaptionContext = CaptionContext()) -> dict: ...


class OfflineCaptioner:
    """Captions from annotations, map and image statistics; deterministic, no model needed."""

    name = "offline"

    def __init__(self, cfg: CaptionConfig = CaptionConfig()):
        self.cfg = cfg

    # -- global ------------------------------------------------------------------------------
    def image_stats(self, clip: Clip) -> dict[str, float]:
        """Frame-0 statistics averaged over views (brightness, contrast, saturation, haze) and the
        saturation of the top 15 % of the first view (the sky, for overcast vs clear)."""
        imgs = [downscale(clip.images[0, v], self.cfg.analysis_width) for v in range(clip.num_views)]
        ys = [luminance(im) for im in imgs]
        top = imgs[0][: max(1, imgs[0].shape[0] * 15 // 100)]
        return {
            "brightness": round(float(np.mean([y.mean() for y in ys])), 4),
            "contrast": round(float(np.mean([y.std() for y in ys])), 4),
            "saturation": round(float(np.mean([saturation(im) for im in imgs])), 4),
            "haze": round(float(np.mean([dark_channel_haze(im, 7) for im in imgs])), 4),
            "sky_saturation": round(saturation(top), 4),
        }

    def _time_weather(self, stats: dict, ctx: CaptionContext) -> tuple[str, str, dict]:
        c = self.cfg
        tod = _keyword(ctx.scene_description, _TIME_KEYWORDS)
        sources = {"time_of_day": "description" if tod else "image"}
        if tod is None:
            b = stats["brightness"]
            tod = "night" if b < c.night_below else "dusk" if b < c.dusk_below else "day"
        weather = _keyword(ctx.scene_description, _WEATHER_KEYWORDS)
        sources["weather"] = "description" if weather else "image"
        if weather is None:
            if stats["haze"] > c.fog_haze_above and stats["contrast"] < c.fog_contrast_below:
                weather = "fog"
            elif tod == "day" and stats["sky_saturation"] < c.overcast_sky_saturation_below:
                weather = "overcast"
            else:
                weather = "clear"
        return tod, weather, sources

    def _ego(self, clip: Clip) -> dict:
        traj = clip.ego_trajectory
        dur = float(clip.timestamps[-1] - clip.timestamps[0]) * 1e-6
        if dur <= 0:
            return {"speed_mps": 0.0, "motion": "stopped"}
        speed = float(np.sum(np.hypot(*np.diff(traj[:, :2], axis=0).T))) / dur
        yaw_rate = float(traj[-1, 2]) / dur
        if speed < self.cfg.still_speed:
            motion = "stopped"
        elif abs(yaw_rate) > self.cfg.turn_yaw_rate:
            motion = "turning left" if yaw_rate > 0 else "turning right"
        else:
            motion = "driving straight"
        return {"speed_mps": round(speed, 2), "motion": motion}

    def _traffic(self, boxes: list[Box3D]) -> dict:
        near = [b for b in boxes if np.hypot(*b.center[:2]) <= self.cfg.traffic_radius]
        cyclists = sum(1 for b in near if b.detection_class in ("bicycle", "motorcycle") and "cycle.with_rider" in b.attributes)
        vehicles = sum(1 for b in near if b.detection_class in _VEHICLE_CLASSES and "vehicle.parked" not in b.attributes) - sum(
            1 for b in near if b.detection_class == "motorcycle" and "cycle.with_rider" in b.attributes
        )
        peds = sum(1 for b in near if b.detection_class == "pedestrian")
        n = vehicles + peds + cyclists
        density = "none" if n == 0 else "light" if n <= 3 else "moderate" if n <= 9 else "heavy"
        return {"density": density, "vehicles": int(vehicles), "pedestrians": int(peds), "cyclists": int(cyclists)}

    def _surroundings(self, road, boxes: list[Box3D], velocities: dict[str, np.ndarray]) -> list[str]:
        out = []
        if road.pedestrian_crossing_ahead:
            out.append("a pedestrian crossing ahead")
        if road.walkway_sides == ["left", "right"]:
            out.append("sidewalks on both sides")
        elif road.walkway_sides:
            out.append(f"a sidewalk on the {road.walkway_sides[0]}")
        near = [b for b in boxes if np.hypot(*b.center[:2]) <= self.cfg.traffic_radius]
        parked = sum(1 for b in near if b.detection_class in _VEHICLE_CLASSES and "vehicle.parked" in b.attributes)
        if parked >= 2:
            out.append(f"{parked} parked vehicles")
        cones = sum(1 for b in near if b.detection_class == "traffic_cone")
        barriers = sum(1 for b in near if b.detection_class == "barrier")
        if cones >= 3:
            out.append("a work zone with traffic cones")
        elif cones:
            out.append(f"{cones} traffic cone{'s' if cones > 1 else ''}")
        if barriers:
            out.append(f"{barriers} barrier{'s' if barriers > 1 else ''}")
        return out

    # -- instances ---------------------------------------------------------------------------
    def _velocities(self, clip: Clip) -> dict[str, np.ndarray]:
        """Ground velocity (m/s, frame-0 ego axes, xy) of every frame-0 instance over the clip;
        the box's own velocity when the instance is in one frame only."""
        e0 = clip.ego_to_global[0]
        r0 = e0[:3, :3]
        out = {}
        for b in clip.boxes[0]:
            key = b.instance_token
            v = b.velocity  # already in frame-0 ego axes
            for t in range(clip.num_frames - 1, 0, -1):
                match = [x for x in clip.boxes[t] if key and x.instance_token == key]
                dt = float(clip.timestamps[t] - clip.timestamps[0]) * 1e-6
                if match and dt > 0:
                    g0 = transform_points(e0, b.center)
                    gt = transform_points(clip.ego_to_global[t], match[0].center)
                    v = r0.T @ ((gt - g0) / dt)
                    break
            out[key or b.token or str(id(b))] = v[:2]
        return out

    def _motion(self, b: Box3D, v: np.ndarray) -> tuple[str, float]:
        speed = float(np.hypot(*v))
        cls = b.detection_class
        if b.category.startswith(_STATIC_PREFIXES) and cls != "pedestrian":
            return "static", 0.0
        if speed < self.cfg.still_speed:
            if cls == "pedestrian":
                return "standing", speed
            return ("parked" if "vehicle.parked" in b.attributes else "stopped"), speed
        ang = float(np.degrees(np.arctan2(v[1], v[0])))
        if abs(ang) <= 35:
            return "same direction", speed
        if abs(ang) >= 145:
            return "opposite direction", speed
        return ("crossing right to left" if ang > 0 else "crossing left to right"), speed

    def _size_word(self, b: Box3D) -> str:
        ref = TYPICAL_SIZES.get(b.detection_class or "")
        if ref is None:
            return "medium"
        ratio = float(np.prod(b.size) / np.prod(ref))
        return "small" if ratio < self.cfg.small_volume_ratio else "large" if ratio > self.cfg.large_volume_ratio else "medium"

    def camera_instances(self, clip: Clip, view: int, velocities: dict[str, np.ndarray]) -> list[dict]:
        """Instance entries of the boxes visible in ``view`` at frame 0, nearest first."""
        c = self.cfg
        w, h = clip.image_size
        ego_to_cam = np.linalg.inv(clip.cam_to_ego[view])
        k = clip.intrinsics[view]
        seen = []
        for b in clip.boxes[0]:
            dist = float(np.hypot(*b.center[:2]))
            if dist > c.max_distance:
                continue
            cam_c = transform_points(ego_to_cam, b.center)
            if cam_c[2] < 0.5:
                continue
            pts = transform_points(ego_to_cam, b.corners())
            pts = pts[pts[:, 2] > 0.1]
            uv, _ = project_points(pts, k)
            uvc, _ = project_points(cam_c[None], k)
            uc, vc = float(uvc[0, 0]), float(uvc[0, 1])
            u0, v0 = uv.min(axis=0)
            u1, v1 = uv.max(axis=0)
            cu0, cv0, cu1, cv1 = max(u0, 0), max(v0, 0), min(u1, w), min(v1, h)
            if cu1 <= cu0 or cv1 <= cv0:
                continue
            area, full = (cu1 - cu0) * (cv1 - cv0), (u1 - u0) * (v1 - v0)
            inside = 0 <= uc < w and 0 <= vc < h
            if area < c.min_box_pixels or not (inside or area >= 0.3 * full):
                continue
            seen.append((float(cam_c[2]), dist, b, (cu0, cv0, cu1, cv1), uc))
        seen.sort(key=lambda s: s[0])
        image = clip.images[0, view]
        out = []
        for i, (depth, dist, b, box, uc) in enumerate(seen):
            if len(out) >= c.max_instances_per_camera:
                break
            u0, v0, u1, v1 = box
            mask = np.zeros((h, w), bool)
            du, dv = 0.2 * (u1 - u0), 0.2 * (v1 - v0)
            mask[int(v0 + dv) : int(np.ceil(v1 - dv)), int(u0 + du) : int(np.ceil(u1 - du))] = True
            for _, _, _, nb, _ in seen[:i]:  # pixels of nearer objects do not belong to this one
                mask[int(nb[1]) : int(np.ceil(nb[3])), int(nb[0]) : int(np.ceil(nb[2]))] = False
            key = b.instance_token or b.token or str(id(b))
            motion, speed = self._motion(b, velocities.get(key, b.velocity[:2]))
            bearing = float(np.degrees(np.arctan2(b.center[1], b.center[0])))
            out.append(
                {
                    "instance_token": b.instance_token,
                    "category": b.category,
                    "class": class_noun(b),
                    "colour": colour_name(image[mask]),
                    "size": self._size_word(b),
                    "size_m": [round(float(x), 2) for x in b.size],
                    "distance_m": round(dist, 1),
                    "bearing_deg": round(bearing, 1),
                    "position": position_bucket(bearing),
                    "frame_position": "left" if uc < w / 3 else "right" if uc > 2 * w / 3 else "centre",
                    "box_2d": [round(float(x), 1) for x in box],
                    "motion": motion,
                    "speed_mps": round(speed, 2),
                    "visibility": int(b.visibility),
                }
            )
        return out

    # -- whole caption -----------------------------------------------------------------------
    def caption(self, clip: Clip, context: CaptionContext = CaptionContext()) -> dict:
        stats = self.image_stats(clip)
        tod, weather, sources = self._time_weather(stats, context)
        road = road_facts(clip.map, self.cfg.road)
        boxes0 = clip.boxes[0] if clip.boxes else []
        velocities = self._velocities(clip)
        g = {
            "time_of_day": tod,
            "weather": weather,
            "sources": sources,
            "road": road.to_dict(),
            "surroundings": self._surroundings(road, boxes0, velocities),
            "traffic": self._traffic(boxes0),
            "ego": self._ego(clip),
            "image_stats": stats,
            "location": context.location,
        }
        g["text"] = global_sentence(g)
        cams = {}
        for vi, ch in enumerate(clip.views):
            cam = {"instances": self.camera_instances(clip, vi, velocities)}
            cam["text"] = camera_text(ch, cam)
            cams[ch] = cam
        caption = {"schema": CAPTION_SCHEMA, "backend": self.name, "global": g, "cameras": cams}
        caption["text"] = render_text(caption)
        return caption
