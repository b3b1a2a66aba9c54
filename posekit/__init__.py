"""posekit: 3D pose estimation for robotics."""

__version__ = "0.1.0"
