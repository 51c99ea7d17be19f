"""Self-contained HTML reports (one file, no network at view time).

* :mod:`.html`: the items (text, videos, pictures, interactive point views, metric tables) and
  :func:`~.html.write_report`; ``pointview.js`` is the inline canvas-2D point renderer.
* :mod:`.scene`: the section of one scene of a nuScenes-format root (video, BEV, LiDAR view),
  optionally against the same scene of a second (generated) root.
"""
