"""The ROS-compatible bridge from a trained policy and reward to a real robot."""
