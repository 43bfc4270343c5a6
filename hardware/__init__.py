"""The ROS-compatible bridge from a trained policy and its learned reward to a real robot.

* :mod:`~robo_reward.hardware.profile`: robot profiles (YAML in ``configs/robots/``), validated.
* :mod:`~robo_reward.hardware.convert`: JointState/Image/PoseStamped to numpy and actions to commands, no ROS import.
* :mod:`~robo_reward.hardware.safety`: clipping, rate limiting, watchdog, latched e-stop.
* :mod:`~robo_reward.hardware.transport`: the middleware interface; :mod:`~robo_reward.hardware.ros2` is the rclpy
  backend (``pip install robo-reward[ros2]``).
* :mod:`~robo_reward.hardware.deploy`: the fixed-rate control loop behind ``robo-reward deploy``.
* :mod:`~robo_reward.hardware.env`: ``RosRobotEnv``, the same robot as a ``gymnasium.Env``.
* :mod:`~robo_reward.hardware.fake_robot` and :mod:`~robo_reward.hardware.testing`: a fake robot node and a
  loopback-only harness for tests and demos.

Importing this package loads neither ROS nor torch.
"""
