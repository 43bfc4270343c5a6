#!/usr/bin/env bash
# RAPL benchmark: (1) alignment, Spearman(hidden preference return, reward) on held-out Push2D rollouts for RAPL,
# RLHF and the unaligned OT reward at 25/50/150 oracle triplets, 5 seeds, plus the square-embodiment transfer,
# with the autoencoder-pretrained encoder (the config's default) and, as an ablation, the seeded random CNN;
# (2) EpisodicSAC (20k env steps, 3 seeds) with each reward: task success, time in the red zone, the preference
# return. Runs go to runs/rapl/ (git-ignored); the tables and plots are copied here. torch threads 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
.venv/bin/robo-reward rapl configs/rapl/pipeline.yaml &
.venv/bin/robo-reward rapl configs/rapl/pipeline.yaml --set pretrain.kind=none --out runs/rapl/pipeline_random_init &
wait
for d in pipeline pipeline_random_init; do
  mkdir -p benchmarks/rapl/alignment/$d
  cp runs/rapl/$d/{results.csv,summary.csv,summary.md,config.json} benchmarks/rapl/alignment/$d/
done
# the RL configs load runs/rapl/pipeline/models/seed0/*_150.pt, written by the first command above
.venv/bin/robo-reward bench configs/rapl/rl_task.yaml configs/rapl/rl_gt.yaml configs/rapl/rl_rapl.yaml \
  configs/rapl/rl_rlhf.yaml configs/rapl/rl_unaligned.yaml --seeds 3 --jobs 2 --out runs/rapl/rl_sac --no-progress
mkdir -p benchmarks/rapl/rl_sac
cp runs/rapl/rl_sac/{summary.md,summary.csv,results.csv,curves.png,curves_progress.png} benchmarks/rapl/rl_sac/
# task reward + learned term (task_reward runs copied from rl_sac, each with a COPIED file, so the bench skips them)
.venv/bin/robo-reward bench configs/rapl/rl_task.yaml configs/rapl/rl_task_plus_rapl.yaml \
  configs/rapl/rl_task_plus_rlhf.yaml --seeds 3 --jobs 2 --out runs/rapl/rl_sac_plus --no-progress
mkdir -p benchmarks/rapl/rl_sac_plus
cp runs/rapl/rl_sac_plus/{summary.md,summary.csv,results.csv,curves.png} benchmarks/rapl/rl_sac_plus/
