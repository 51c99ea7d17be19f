"""Scene files: a documented YAML/JSON layout (map or SynthTown town, agents with tracks,
pedestrians with poses, ego path, caption) with an editing API, made from real samples
(:func:`from_root`) and rendered into nuScenes-format roots with SynthTown (:func:`to_root`).
See docs/scene_files.md."""

from .io import check_length, load_scene, save_scene, scene_from_dict, scene_to_dict
from .schema import Agent, Caption, EgoPoint, ExplicitMap, Pedestrian, Scene, TownMap, TrackPoint

__all__ = [
    "Agent",
    "Caption",
    "EgoPoint",
    "ExplicitMap",
    "Pedestrian",
    "Scene",
    "TownMap",
    "TrackPoint",
    "check_length",
    "load_scene",
    "save_scene",
    "scene_from_dict",
    "scene_to_dict",
]
