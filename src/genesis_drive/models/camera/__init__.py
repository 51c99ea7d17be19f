"""Camera branch networks: the causal 3D video VAE and the multi-view spatio-temporal DiT."""
