"""Pictures and videos people look at: view grids as MP4, box / LiDAR overlays, BEV plots.

* :mod:`.video`: 2 x 3 camera grids and atomic MP4 / PNG writing.
* :mod:`.overlay`: 3D box edges, skeletons and LiDAR points drawn onto camera images.
* :mod:`.bev`: a BEV plot (matplotlib, Agg) of LiDAR, boxes and map layers in the ego frame.
* :mod:`.show`: :func:`~genesis_drive.viz.show.write_clip_show`, everything about one clip.
"""
