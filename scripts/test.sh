#!/usr/bin/env bash
# Installs robo_reward with its pinned dependencies (and the ROS 2 and Ray extras) into .venv and runs the test suite, as CI
# does. Tests that need ROS 1 (Debian's ros-core) or a network namespace (root, unshare, ip) skip with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's chromium and its driver: tests/test_rapl_label_browser.py clicks the labelling page in a real headless
# browser (under CI=true it fails without them; elsewhere it skips with the reason)
if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver \
      >/tmp/apt-chromium.log 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends chromium chromium-driver >/tmp/apt-chromium.log 2>&1; }; then
    echo "test.sh: installed chromium + chromium-driver for the labelling-page browser test"
  else
    echo "test.sh: apt-get of chromium failed (see below)"; tail -5 /tmp/apt-chromium.log
  fi
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade "pip>=24"
.venv/bin/python -m pip install -q -r requirements.lock -r requirements-ros2.lock -r requirements-ray.lock \
    -e '.[test,ros2,ray]'
export MUJOCO_GL="${MUJOCO_GL:-egl}" PYTHONHASHSEED=0 WANDB_MODE=offline
.venv/bin/python -m pytest -n 2 --dist loadfile --durations=15 "$@"
