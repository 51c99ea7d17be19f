"""Evaluation suite: metrics as update/compute objects, protocols as typed, named choices.

Modules (each one job; protocols and their mapping to published numbers in ``docs/metrics.md``):

* :mod:`.frechet`: Fréchet distance (scipy ``sqrtm`` and torch ``eigh``), :class:`GaussianStats`.
* :mod:`.fd_metric`: :class:`FrechetDistance`, a torchmetrics ``Metric`` with a pluggable feature
  extractor (FID_multi, FVD_multi, FD_synth are instances with different networks and names).
* :mod:`.reference_cache`: reference mean/covariance in ``.safetensors`` keyed by protocol.
* :mod:`.inception`, :mod:`.i3d`: the FID Inception-v3 and the FVD I3D as torch modules that load
  local weight files (:mod:`.weights`); :mod:`.extractors`: their resize/scale wrappers.
* :mod:`.video_io`, :mod:`.video`: clip sources (MP4 / frame folders / nuScenes root) and
  :class:`~.video.VideoEvaluator` with :class:`~.video.VideoProtocol`.
* :mod:`.chamfer`, :mod:`.chamfer_metric`: Chamfer distance under named protocols (ViDAR/HERMES,
  4D-Occ) and its per-horizon metric.
* :mod:`.lidar_gen`: BEV-histogram MMD and JSD (LiDARGen protocol); :mod:`.lidar`: file pairing
  of generated sweeps with a nuScenes ground truth.
* :mod:`.bootstrap`: seeded bootstrap intervals; :mod:`.report`: JSON + markdown reports;
  :mod:`.states`: torchmetrics list-state helpers.
* Learned evaluators (networks in ``models/evaluators``, trained by tasks in ``train/tasks``):
  :mod:`.synth_features` (FD_synth), :mod:`.consistency`, :mod:`.layout_bev`, their commands in
  :mod:`.learned_cli`.
* :mod:`.cli`: ``genesis-drive eval video|lidar|layout|consistency|fd-synth``.
"""
