"""RGB colours (uint8 triples) of the layout conditions and visualisations.

Object colours are saturated and mutually distinct; map colours are muted, so that objects stand
out over the road in camera layouts and overlays.
"""

from __future__ import annotations

__all__ = ["CLASS_COLORS", "MAP_COLORS", "FACE_SHADES", "POSE_BOX_SHADE", "class_color"]

#: One colour per nuScenes detection class (``schema.DETECTION_CLASSES`` order), RGB.
CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "car": (0, 128, 255),
    "truck": (255, 128, 0),
    "bus": (255, 230, 0),
    "trailer": (160, 82, 45),
    "construction_vehicle": (255, 0, 255),
    "pedestrian": (255, 0, 0),
    "motorcycle": (0, 255, 255),
    "bicycle": (0, 255, 100),
    "traffic_cone": (255, 150, 200),
    "barrier": (150, 150, 255),
}

#: Map layer colours, RGB (polygons are filled, lines stroked).
MAP_COLORS: dict[str, tuple[int, int, int]] = {
    "drivable_area": (60, 60, 60),
    "walkway": (45, 85, 45),
    "ped_crossing": (140, 140, 140),
    "lane_divider": (255, 255, 255),
    "road_divider": (200, 200, 90),
    "road_edge": (140, 70, 170),
    "lane_centerline": (90, 110, 130),
}

#: Brightness factor of each box face in camera layouts (faces named in the box's frame:
#: front = +length/2, the heading side). Heading is readable from which face is brightest.
FACE_SHADES: dict[str, float] = {"front": 1.0, "top": 0.8, "left": 0.65, "right": 0.65, "back": 0.45, "bottom": 0.35}

#: Face brightness of a pedestrian box that carries a pose, so that its skeleton (drawn in the
#: full class colour) stays visible on top of it.
POSE_BOX_SHADE = 0.3


def class_color(name: str, shade: float = 1.0) -> tuple[int, int, int]:
    """The colour of detection class ``name`` scaled by ``shade`` in [0, 1]."""
    r, g, b = CLASS_COLORS[name]
    return int(round(r * shade)), int(round(g * shade)), int(round(b * shade))
