"""genesis-drive: joint multi-view camera video + LiDAR driving-scene generation."""

__version__ = "0.1.0"
