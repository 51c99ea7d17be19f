"""Exports of a nuScenes-format root for other tools: PLY / ``.pcd.bin`` sweeps, pictures, MP4s, Rerun.

* :mod:`.ply`: binary little-endian PLY of a LiDAR sweep, and its reader.
* :mod:`.pictures`: per-keyframe BEV and LiDAR-on-image pictures and the camera grid video of a scene.
* :mod:`.rerun_rec`: a Rerun recording (``.rrd``) of a scene.
* :mod:`.cli`: ``genesis-drive export``.
"""
