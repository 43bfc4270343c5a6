#!/usr/bin/env bash
# ONI-Retrieval (keyword stand-in, asynchronous) vs extrinsic-only PPO, 3 seeds, 20k env steps per run, on
# NetHackStaircase (success) and NetHackScore (depth, score). Runs go to runs/oni/ (git-ignored); the tables and
# plots are copied here. Budget: 12 runs at --jobs 1, about 30-45 min on 2 shared cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
export MUJOCO_GL=egl
for seeds in 1 2 3; do  # seed-major over both tasks: a benchmark stopped early has every arm's first seeds
  for task in staircase score; do
    .venv/bin/robo-reward bench "configs/oni/${task}_extrinsic.yaml" "configs/oni/${task}_retrieval.yaml" \
      --seeds "$seeds" --jobs 1 --out "runs/oni/${task}" --no-progress
    mkdir -p "benchmarks/oni/${task}"
    cp "runs/oni/${task}"/{summary.md,summary.csv,results.csv,curves.png} "benchmarks/oni/${task}/"
  done
done
.venv/bin/python benchmarks/oni/annotator_log.py runs/oni/staircase runs/oni/score --out benchmarks/oni/annotator.md
