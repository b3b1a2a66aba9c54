"""ROS 2 interface packages (.msg) posekit needs beyond the Python wheels; see build.py."""
