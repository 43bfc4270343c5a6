#!/usr/bin/env bash
# Installs robo_reward with its pinned dependencies (and the ROS 2 and Ray extras) into .venv and runs the test suite, as CI
# does. Tests that need ROS 1 (Debian's ros-core) or a network namespace (root, unshare, ip) skip with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade "pip>=24"
.venv/bin/python -m pip install -q -r requirements.lock -r requirements-ros2.lock -r requirements-ray.lock \
    -e '.[test,ros2,ray]'
export MUJOCO_GL="${MUJOCO_GL:-egl}" PYTHONHASHSEED=0 WANDB_MODE=offline
.venv/bin/python -m pytest -n 2 --dist loadfile --durations=15 "$@"
