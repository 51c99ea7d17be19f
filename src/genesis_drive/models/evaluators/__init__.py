"""Networks of the learned evaluators (FD_synth features, BEV layout, 2D layout segmentation, depth)."""
