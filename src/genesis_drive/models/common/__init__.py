"""Building blocks shared by the camera and LiDAR generative networks (attention, adaLN-zero,
timestep / Fourier embeddings, positions)."""
