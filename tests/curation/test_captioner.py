"""Offline captions agree with the annotations, the map and the image pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genesis_drive.curation.caption_schema import (
    CAPTION_SCHEMA,
    instance_sentence,
    validate_caption,
)
from genesis_drive.curation.captioner import (
    CaptionContext,
    OfflineCaptioner,
    position_bucket,
)
from genesis_drive.curation.colour import colour_name
from genesis_drive.curation.road import road_facts
from genesis_drive.data.schema import Box3D, MapLayers

from .clips import make_clip

LANES = MapLayers(
    lane_centerline=(
        np.array([[-60.0, 0.0], [60.0, 0.0]]),
        np.array([[-60.0, 3.5], [60.0, 3.5]]),
        np.array([[60.0, -3.5], [-60.0, -3.5]]),
    ),
    ped_crossing=(np.array([[20.0, -8.0], [24.0, -8.0], [24.0, 8.0], [20.0, 8.0]]),),
    walkway=(np.array([[-30.0, 8.0], [30.0, 8.0], [30.0, 10.0], [-30.0, 10.0]]), np.array([[-30.0, -8.0], [30.0, -8.0], [30.0, -10.0], [-30.0, -10.0]])),
)


def _car(x=10.0, y=0.0, token="car", vx=5.0, **kw):
    return Box3D.from_yaw([x, y, 0.8], [1.9, 4.5, 1.6], 0.0, "vehicle.car", instance_token=token, velocity=[vx, 0, 0], **kw)


@pytest.fixture(scope="module")
def scene_caption() -> dict:
    ped = Box3D.from_yaw([6.0, -4.0, 0.9], [0.6, 0.7, 1.75], 0.0, "human.pedestrian.adult", instance_token="ped", velocity=[0, 1.2, 0])
    truck = Box3D.from_yaw([-15.0, 3.5, 1.5], [2.5, 8.0, 3.0], np.pi, "vehicle.truck", instance_token="truck", velocity=[-7, 0, 0])
    clip = make_clip(t=4, seed=11, boxes=[_car(), ped, truck], paint={"car": (245, 245, 245), "ped": (200, 30, 30), "truck": (30, 60, 200)}, map_layers=LANES)
    return OfflineCaptioner().caption(clip)


def test_car_ten_metres_in_front(scene_caption):
    front = scene_caption["cameras"]["CAM_FRONT"]
    assert len(front["instances"]) == 1
    car = front["instances"][0]
    assert car["class"] == "car" and car["colour"] == "white" and car["position"] == "front"
    assert car["distance_m"] == pytest.approx(10.0, abs=0.5)
    assert car["motion"] == "same direction" and car["speed_mps"] == pytest.approx(5.0, abs=0.1)
    text = front["text"]
    assert text.startswith("[CAM_FRONT] A white car 10 m in front")
    assert "moving in the same direction at 5.0 m/s" in text


def test_other_views_and_global(scene_caption):
    ped = scene_caption["cameras"]["CAM_FRONT_RIGHT"]["instances"][0]
    assert (ped["class"], ped["colour"], ped["position"], ped["motion"]) == ("pedestrian", "red", "front-right", "crossing right to left")
    truck = scene_caption["cameras"]["CAM_BACK"]["instances"][0]
    assert (truck["class"], truck["colour"], truck["position"], truck["motion"], truck["size"]) == ("truck", "blue", "rear", "opposite direction", "medium")
    for ch in ("CAM_BACK_LEFT", "CAM_FRONT_LEFT", "CAM_BACK_RIGHT"):
        assert scene_caption["cameras"][ch]["instances"] == []
        assert scene_caption["cameras"][ch]["text"] == f"[{ch}] No road users visible."
    g = scene_caption["global"]
    assert g["road"]["type"] == "straight"
    assert (g["road"]["lanes_same_direction"], g["road"]["lanes_opposite"]) == (2, 1)
    assert g["road"]["pedestrian_crossing_ahead"] and g["road"]["walkway_sides"] == ["left", "right"]
    assert g["traffic"] == {"density": "light", "vehicles": 2, "pedestrians": 1, "cyclists": 0}
    assert g["ego"] == {"speed_mps": pytest.approx(8.0, abs=0.01), "motion": "driving straight"}
    assert g["time_of_day"] == "day" and g["sources"]["time_of_day"] == "image"
    validate_caption(scene_caption)
    assert scene_caption["schema"] == CAPTION_SCHEMA
    assert scene_caption["text"].splitlines()[0] == g["text"]
    assert json.loads(json.dumps(scene_caption)) == scene_caption


def test_instances_sorted_by_depth_and_capped():
    boxes = [_car(x=x, token=f"c{i}") for i, x in enumerate((40.0, 12.0, 25.0))]
    clip = make_clip(t=2, seed=12, boxes=boxes)
    cap = OfflineCaptioner().caption(clip)
    dists = [i["distance_m"] for i in cap["cameras"]["CAM_FRONT"]["instances"]]
    assert dists == sorted(dists) and dists[0] == pytest.approx(12.0, abs=0.5)
    from genesis_drive.curation.captioner import CaptionConfig

    capped = OfflineCaptioner(CaptionConfig(max_instances_per_camera=1)).caption(clip)
    assert len(capped["cameras"]["CAM_FRONT"]["instances"]) == 1


def test_parked_and_night_from_description_and_brightness():
    clip = make_clip(t=2, seed=13, boxes=[_car(x=8.0, y=4.0, vx=0.0, attributes=("vehicle.parked",))])
    cap = OfflineCaptioner().caption(clip, CaptionContext("Night, rain, parking lot", "test-town"))
    g = cap["global"]
    assert (g["time_of_day"], g["weather"]) == ("night", "rain")
    assert g["sources"] == {"time_of_day": "description", "weather": "description"}
    assert g["location"] == "test-town"
    inst = cap["cameras"]["CAM_FRONT"]["instances"][0]
    assert inst["motion"] == "parked" and inst["position"] == "front-left"
    dark = make_clip(t=2, seed=13)
    dark.images[:] = (dark.images * 0.15).astype(np.uint8)
    assert OfflineCaptioner().caption(dark)["global"]["time_of_day"] == "night"


def test_captions_are_deterministic():
    clip = make_clip(t=3, seed=14, boxes=[_car()], map_layers=LANES)
    assert OfflineCaptioner().caption(clip) == OfflineCaptioner().caption(clip)


def test_position_buckets():
    assert [position_bucket(b) for b in (0, 30, 90, 135, 180, -179, -90, -30)] == [
        "front", "front-left", "left", "rear-left", "rear", "rear", "right", "front-right"
    ]  # fmt: skip


def test_colour_names():
    for rgb, name in [((250, 250, 250), "white"), ((15, 15, 15), "black"), ((128, 128, 128), "grey"), ((200, 30, 30), "red"),
                      ((30, 60, 200), "blue"), ((40, 160, 60), "green"), ((230, 220, 40), "yellow"), ((110, 70, 30), "brown")]:
        assert colour_name(np.tile(np.array(rgb, np.uint8), (30, 1))) == name
    assert colour_name(np.zeros((5, 3), np.uint8)) is None  # too few pixels


def test_road_facts_intersection_and_curve():
    cross = MapLayers(lane_centerline=(np.array([[-50.0, 0.0], [50.0, 0.0]]), np.array([[15.0, -40.0], [15.0, 40.0]])))
    assert road_facts(cross).type == "intersection"
    arc = np.array([[30 * np.sin(a) - 5, 30 * (1 - np.cos(a))] for a in np.linspace(0, 1.5, 40)])
    f = road_facts(MapLayers(lane_centerline=(arc,)))
    assert (f.type, f.curve_direction) == ("curve", "left")
    f = road_facts(MapLayers(lane_centerline=(arc * np.array([1, -1]),)))
    assert (f.type, f.curve_direction) == ("curve", "right")
    assert road_facts(MapLayers()).type == "unknown"


def test_instance_sentence_for_humans_and_validation():
    s = instance_sentence({"class": "pedestrian", "colour": "red", "size": "medium", "distance_m": 7.2, "position": "left",
                           "frame_position": "right", "motion": "standing", "speed_mps": 0.0})
    assert s == "A pedestrian in red 7 m to the left, right of the frame, standing."
    with pytest.raises(ValueError, match="schema"):
        validate_caption({"schema": "other"})
