"""The structured caption (JSON) of a clip and its text rendering.

Schema ``genesis-drive/caption/v1`` (documented field by field in docs/curation.md)::

    {
      "schema": "genesis-drive/caption/v1",
      "backend": "offline" | "vlm:<model dir name>",
      "global": {
        "time_of_day": "day" | "dusk" | "night",
        "weather": "clear" | "overcast" | "fog" | "rain" | "snow",
        "sources": {"time_of_day": "image" | "description", "weather": "image" | "description"},
        "road": {"type": "straight" | "curve" | "intersection" | "unknown",
                 "curve_direction": "left" | "right" | null,
                 "lanes_same_direction": int | null, "lanes_opposite": int | null,
                 "pedestrian_crossing_ahead": bool, "walkway_sides": ["left", "right"]},
        "surroundings": [str, ...],
        "traffic": {"density": "none" | "light" | "moderate" | "heavy",
                    "vehicles": int, "pedestrians": int, "cyclists": int},
        "ego": {"speed_mps": float, "motion": "stopped" | "driving straight" | "turning left" | "turning right"},
        "image_stats": {"brightness": float, "contrast": float, "saturation": float, "haze": float,
                        "sky_saturation": float},
        "location": str,
        "text": str
      },
      "cameras": {
        "<CHANNEL>": {
          "instances": [{
            "instance_token": str, "category": str, "class": str,
            "colour": str | null, "size": "small" | "medium" | "large", "size_m": [w, l, h],
            "distance_m": float, "bearing_deg": float,
            "position": "front" | "front-left" | "left" | "rear-left" | "rear" | "rear-right" | "right" | "front-right",
            "frame_position": "left" | "centre" | "right", "box_2d": [u0, v0, u1, v1],
            "motion": "parked" | "stopped" | "standing" | "static" | "same direction" | "opposite direction"
                      | "crossing left to right" | "crossing right to left",
            "speed_mps": float, "visibility": 1 | 2 | 3 | 4
          }, ...],
          "text": str
        }, ...
      },
      "text": str
    }

Frames: ``distance_m`` and ``bearing_deg`` are in the ego frame of the clip's frame 0 (bearing
counter-clockwise from the ego's heading, 0 = straight ahead, 90 = left); ``box_2d`` is in pixels
of the clip's image size; speeds are m/s over the ground.
"""

from __future__ import annotations

__all__ = [
    "CAPTION_SCHEMA",
    "POSITION_PHRASES",
    "camera_text",
    "global_sentence",
    "instance_sentence",
    "render_text",
    "validate_caption",
]

CAPTION_SCHEMA = "genesis-drive/caption/v1"

#: Position bucket -> phrase following the distance ("10 m in front").
POSITION_PHRASES = {
    "front": "in front",
    "front-left": "to the front-left",
    "left": "to the left",
    "rear-left": "to the rear-left",
    "rear": "behind",
    "rear-right": "to the rear-right",
    "right": "to the right",
    "front-right": "to the front-right",
}
_HUMANS = ("pedestrian", "child", "construction worker", "police officer")
_TIME_WORDS = {"day": "Daytime", "dusk": "Dusk", "night": "Night"}


def _article(word: str) -> str:
    return "An" if word[:1].lower() in "aeiou" else "A"


def instance_sentence(inst: dict) -> str:
    """One sentence for an instance, e.g. ``A white car 10 m in front, centre of the frame,
    moving in the same direction at 5.0 m/s.``"""
    cls = inst["class"]
    colour = inst.get("colour")
    size = inst.get("size", "medium")
    size_word = f"{size} " if size in ("small", "large") else ""
    if cls in _HUMANS:
        noun = f"{size_word}{cls}" + (f" in {colour}" if colour else "")
    else:
        noun = f"{size_word}{colour + ' ' if colour else ''}{cls}"
    where = f"{inst['distance_m']:.0f} m {POSITION_PHRASES[inst['position']]}"
    frame = "centre of the frame" if inst["frame_position"] == "centre" else f"{inst['frame_position']} of the frame"
    motion = inst["motion"]
    if motion in ("same direction", "opposite direction"):
        moving = f"moving in the {motion} at {inst['speed_mps']:.1f} m/s"
    elif motion.startswith("crossing"):
        moving = f"{motion} at {inst['speed_mps']:.1f} m/s"
    else:
        moving = motion
    return f"{_article(noun)} {noun} {where}, {frame}, {moving}."


def global_sentence(g: dict) -> str:
    """The global paragraph: time and weather, ego motion and road, surroundings, traffic."""
    parts = [f"{_TIME_WORDS[g['time_of_day']]}, {g['weather']} weather."]
    ego = g["ego"]
    if ego["motion"] == "stopped":
        doing = "is stopped"
    else:
        doing = f"is {ego['motion']} at {ego['speed_mps']:.1f} m/s"
    road = g["road"]
    if road["type"] == "intersection":
        where = "at an intersection"
    elif road["type"] == "curve":
        where = f"on a road curving {road['curve_direction']}"
    elif road["type"] == "straight":
        where = "on a straight road"
    else:
        where = "on a road"
    lanes = ""
    if road["lanes_same_direction"]:
        n, m = road["lanes_same_direction"], road["lanes_opposite"] or 0
        lanes = f" with {n} lane{'s' if n != 1 else ''} in its direction and {m} oncoming"
    parts.append(f"The ego vehicle {doing} {where}{lanes}.")
    if g["surroundings"]:
        parts.append("Surroundings: " + ", ".join(g["surroundings"]) + ".")
    t = g["traffic"]
    if t["density"] == "none":
        parts.append("No traffic.")
    else:
        counts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in ((t["vehicles"], "vehicle"), (t["pedestrians"], "pedestrian"), (t["cyclists"], "cyclist")) if n]
        parts.append(f"{t['density'].capitalize()} traffic: {', '.join(counts)}.")
    return " ".join(parts)


def camera_text(channel: str, cam: dict) -> str:
    """``[CHANNEL] sentence sentence ...`` (or a sentence saying nobody is visible)."""
    if cam.get("vlm_description"):
        body = cam["vlm_description"].strip()
    elif cam["instances"]:
        body = " ".join(instance_sentence(i) for i in cam["instances"])
    else:
        body = "No road users visible."
    return f"[{channel}] {body}"


def render_text(caption: dict) -> str:
    """The whole caption as text: the global paragraph, then one paragraph per camera."""
    lines = [caption["global"]["text"]]
    lines += [caption["cameras"][ch]["text"] for ch in caption["cameras"]]
    return "\n".join(lines)


def validate_caption(caption: dict) -> None:
    """Raise ``ValueError`` naming the field when ``caption`` does not follow the schema."""
    if not isinstance(caption, dict) or caption.get("schema") != CAPTION_SCHEMA:
        raise ValueError(f"caption.schema must be {CAPTION_SCHEMA!r}")
    g = caption.get("global")
    if not isinstance(g, dict):
        raise ValueError("caption.global must be an object")
    for key, allowed in (
        ("time_of_day", tuple(_TIME_WORDS)),
        ("weather", ("clear", "overcast", "fog", "rain", "snow")),
    ):
        if g.get(key) not in allowed:
            raise ValueError(f"caption.global.{key} must be one of {allowed}, got {g.get(key)!r}")
    for key in ("road", "traffic", "ego", "text", "surroundings"):
        if key not in g:
            raise ValueError(f"caption.global.{key} is missing")
    cams = caption.get("cameras")
    if not isinstance(cams, dict):
        raise ValueError("caption.cameras must be an object keyed by camera channel")
    for ch, cam in cams.items():
        if "instances" not in cam or "text" not in cam:
            raise ValueError(f"caption.cameras.{ch} needs 'instances' and 'text'")
        for i, inst in enumerate(cam["instances"]):
            for key in ("class", "distance_m", "position", "motion", "frame_position"):
                if key not in inst:
                    raise ValueError(f"caption.cameras.{ch}.instances[{i}].{key} is missing")
            if inst["position"] not in POSITION_PHRASES:
                raise ValueError(f"caption.cameras.{ch}.instances[{i}].position {inst['position']!r} is not one of {tuple(POSITION_PHRASES)}")
    if not isinstance(caption.get("text"), str):
        raise ValueError("caption.text must be a string")
