#!/usr/bin/env bash
# Installs robo_reward with its pinned dependencies into .venv and runs the README's main job, Dopamine against the
# sparse reward on robo_reward/Reach-v0 (about 11 minutes on 2 idle CPU cores from a fresh clone, install included):
#   1. the Dopamine progress model: a per-state progress head (5-member ensemble) pretrained on rollouts of four
#      Reach variants labelled with simulator progress, one-shot adapted on one demo of a held-out task, VOC
#      report. Every stage is cached under runs/dopamine/grm_reach_phi/ (delete a stage's file or folder there to
#      rebuild it);
#   2. PPO on the task's sparse reward, on the Dopamine reward from that learned model (PBRS on its Phi*, r_gold =
#      10 on the env's success), and on Dopamine's shaping with the task's privileged progress in place of the
#      model (the upper bound of the shaping), 2 seeds each.
# Prints where the report is. Extra arguments go to `robo-reward bench` (e.g. --seeds 5).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade "pip>=24"
.venv/bin/python -m pip install -q -r requirements.lock -e .
export MUJOCO_GL="${MUJOCO_GL:-egl}" WANDB_MODE=offline
.venv/bin/robo-reward dopamine-grm configs/dopamine/grm_reach_phi.yaml
.venv/bin/robo-reward bench configs/dopamine/reach_sparse.yaml configs/dopamine/reach_learned_success_gold.yaml \
    configs/dopamine/reach_oracle.yaml --seeds 2 --jobs 2 --out runs/quickstart "$@"
