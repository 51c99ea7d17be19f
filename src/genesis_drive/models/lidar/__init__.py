"""LiDAR branch networks: BEV voxelisation, volume rendering of expected depth, the BEV autoencoder."""
