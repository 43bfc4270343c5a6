#!/usr/bin/env bash
# Installs robo_reward with its pinned dependencies into .venv and runs the README's main job: a benchmark of
# reward designs against the task's sparse reward (about 10 minutes on 2 CPU cores). Prints where the report is.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade "pip>=24"
.venv/bin/python -m pip install -q -r requirements.lock -e .
export MUJOCO_GL="${MUJOCO_GL:-egl}" WANDB_MODE=offline
.venv/bin/robo-reward bench configs/quickstart/*.yaml --jobs 2 --out runs/quickstart "$@"
