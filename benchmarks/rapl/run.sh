#!/usr/bin/env bash
# RAPL benchmark: (1) alignment, Spearman(hidden preference return, reward) on held-out Push2D rollouts for RAPL,
# RLHF and the unaligned OT reward at 25/50/150 oracle triplets, 5 seeds, plus the square-embodiment transfer;
# (2) PPO (EpisodicPPO, 60k env steps) with each reward, 1 seed (3 planned; did not fit): task success, time in the red zone, the
# preference return. Runs go to runs/rapl/ (git-ignored); the tables and plots are copied here. One core:
# torch threads 1, --jobs 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
.venv/bin/robo-reward rapl configs/rapl/pipeline.yaml
mkdir -p benchmarks/rapl/alignment
cp runs/rapl/pipeline/{results.csv,summary.csv,summary.md,config.json} benchmarks/rapl/alignment/
# the RL configs load runs/rapl/pipeline/models/seed0/*_150.pt, written by the command above
.venv/bin/robo-reward bench configs/rapl/rl_task.yaml configs/rapl/rl_gt.yaml configs/rapl/rl_rapl.yaml \
  configs/rapl/rl_rlhf.yaml configs/rapl/rl_unaligned.yaml --seeds 1 --jobs 1 --out runs/rapl/rl --no-progress
mkdir -p benchmarks/rapl/rl
cp runs/rapl/rl/{summary.md,summary.csv,results.csv,curves.png} benchmarks/rapl/rl/
