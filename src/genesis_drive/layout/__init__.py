"""Layout conditions of a :class:`~genesis_drive.data.schema.Clip`.

Modules (each one job):

* :mod:`.frames`: clip geometry per frame (map and LiDAR in a frame's ego frame, camera models).
* :mod:`.project`: near-plane / frustum clipping and pinhole projection to OpenCV fixed point.
* :mod:`.colors`: RGB colours per detection class and map layer.
* :mod:`.bev`: BEV raster (``c h w`` float32) of map layers and box footprints.
* :mod:`.camera`: per-camera layout images (``v h w 3`` uint8): map, depth-ordered boxes, skeletons.
* :mod:`.tokens`: box and ego-trajectory tokens (torch, ``t n d``).

See ``docs/layout.md`` for channel lists, orientation conventions and colours.
"""
