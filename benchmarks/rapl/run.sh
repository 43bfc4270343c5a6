#!/usr/bin/env bash
# RAPL benchmark: (1) alignment, Spearman(hidden preference return, reward) on held-out Push2D rollouts for RAPL,
# RLHF and the unaligned OT reward at 25/50/150 oracle triplets, 5 seeds, plus the square-embodiment transfer,
# with the autoencoder-pretrained encoder (the config's default) and, as an ablation, the seeded random CNN;
# (2) EpisodicSAC (40k env steps, 20 expert demos in the buffer, 5 seeds) with the task reward, the privileged GT
# preference and the task reward plus the RAPL term: task success, time in the red zone, the preference return; and
# the same on the square embodiment (transfer). Runs go to runs/rapl/ (git-ignored); the tables and plots are copied here. torch threads 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
.venv/bin/robo-reward rapl configs/rapl/pipeline.yaml &   # seed 0 alone: --seeds 1 (the same models)
.venv/bin/robo-reward rapl configs/rapl/pipeline.yaml --set pretrain.kind=none --out runs/rapl/pipeline_random_init &
wait
for d in pipeline pipeline_random_init; do
  mkdir -p benchmarks/rapl/alignment/$d
  cp runs/rapl/$d/{results.csv,summary.csv,summary.md,config.json} benchmarks/rapl/alignment/$d/
done
# the RL configs load runs/rapl/pipeline/models/seed0/*_150.pt, written by the first command above.
# RL from 20 zone-avoiding expert demos in the replay buffer (each paid by the design's own reward), 40k steps
.venv/bin/robo-reward collect-demos Push2D --episodes 20 --env-kwargs '{"obs_mode": "dict"}' --only-success \
  --dataset-id robo_reward/rapl/push2d-expert-v0 --root runs/rapl/minari --seed 100000
.venv/bin/robo-reward collect-demos Push2DSquare --episodes 20 --env-kwargs '{"obs_mode": "dict"}' --only-success \
  --dataset-id robo_reward/rapl/push2dsquare-expert-v0 --root runs/rapl/minari --seed 100000
# 5 seeds: task reward, privileged GT preference, task + RAPL term, task + RLHF term
.venv/bin/robo-reward bench configs/rapl/rl_task_demos.yaml configs/rapl/rl_gt_demos.yaml \
  configs/rapl/rl_task_plus_rapl_demos.yaml configs/rapl/rl_task_plus_rlhf_demos.yaml --seeds 5 --jobs 2 \
  --out runs/rapl/rl_sac_demos_5seeds --no-progress
# transfer: the same designs on the square embodiment (encoder aligned on disc videos, square demos)
.venv/bin/robo-reward bench configs/rapl/rl_task_square_demos.yaml configs/rapl/rl_task_plus_rapl_square_demos.yaml \
  configs/rapl/rl_task_plus_rlhf_square_demos.yaml --seeds 5 --jobs 2 --out runs/rapl/rl_sac_demos_square --no-progress
# the disc designs again with twice the budget (the preference-aware policies reach 0.8 progress only at 30-40k)
.venv/bin/robo-reward bench configs/rapl/rl_task_demos.yaml configs/rapl/rl_task_plus_rapl_demos.yaml \
  --set budget.total_timesteps=80000 --seeds 5 --jobs 2 --out runs/rapl/rl_sac_demos_80k --no-progress
for d in rl_sac_demos_5seeds rl_sac_demos_square rl_sac_demos_80k; do
  mkdir -p benchmarks/rapl/$d
  cp runs/rapl/$d/{summary.md,summary.csv,results.csv,curves.png,curves_progress.png} benchmarks/rapl/$d/
done
# projector-only alignment (the reference scripts' frozen backbone), RAPL and RLHF, and its RL term beside the default's
.venv/bin/robo-reward rapl configs/rapl/pipeline_projector.yaml
mkdir -p benchmarks/rapl/alignment/pipeline_projector
cp runs/rapl/pipeline_projector/{results.csv,summary.csv,summary.md,config.json} benchmarks/rapl/alignment/pipeline_projector/
.venv/bin/python benchmarks/rapl/paired.py runs/rapl/pipeline/results.csv runs/rapl/pipeline_projector/results.csv
.venv/bin/robo-reward rapl configs/rapl/pipeline.yaml --set 'seeds=[5,6]' --out runs/rapl/val/base &
.venv/bin/robo-reward rapl configs/rapl/pipeline_projector.yaml --set 'seeds=[5,6]' --out runs/rapl/val/proj_both &
wait
for v in base proj_both; do
  mkdir -p benchmarks/rapl/alignment/validation_projector/$v
  cp runs/rapl/val/$v/{results.csv,summary.csv,summary.md,config.json} benchmarks/rapl/alignment/validation_projector/$v/
done
.venv/bin/robo-reward bench configs/rapl/rl_task_plus_rapl_projector_demos.yaml configs/rapl/rl_task_plus_rapl_demos.yaml \
  --seeds 5 --jobs 2 --out runs/rapl/rl_sac_demos_projector --no-progress
mkdir -p benchmarks/rapl/rl_sac_demos_projector
cp runs/rapl/rl_sac_demos_projector/{summary.md,summary.csv,results.csv,curves.png,curves_progress.png} benchmarks/rapl/rl_sac_demos_projector/
# audit of the seed-0 learned rewards on the seed-0 policies' states, against the hidden per-step preference
A="--set audit.expert=robo_reward.envs.experts:make_expert --set audit.target=preference_reward --set audit.episodes=20"
M=runs/rapl/pipeline/models/seed0
for run in task_plus_rapl_ot_demos env_reward; do
  for s in 0 1 2 3 4; do
    .venv/bin/robo-reward audit runs/rapl/rl_sac_demos_projector/runs/$run/seed$s $A --out runs/rapl/audit/${run}_seed$s \
      --set "reward.terms=[{name: rapl_ot, checkpoint: $M/rapl_150.pt}, {name: rapl_rlhf, checkpoint: $M/rlhf_150.pt}]"
  done
  .venv/bin/robo-reward audit runs/rapl/rl_sac_demos_projector/runs/$run/seed0 $A \
    --out runs/rapl/audit/${run}_seed0_unaligned --set "reward.terms=[{name: rapl_ot, checkpoint: $M/unaligned_150.pt}]"
  for d in ${run}_seed{0,1,2,3,4} ${run}_seed0_unaligned; do
    mkdir -p benchmarks/rapl/audit/$d && cp runs/rapl/audit/$d/audit.{csv,md,png,json} benchmarks/rapl/audit/$d/
  done
done
# Earlier RL tables, kept for the record:
# - rl_sac_demos/ (3 seeds, ninth session): the bench over rl_task_demos, rl_gt_demos, rl_task_plus_rapl_demos and
#   rl_task_plus_rlhf_demos.yaml; rl_sac_demos_reward_only/ (seed 0): rl_task_demos, rl_rapl_demos, rl_rlhf_demos
#   and rl_unaligned_demos.yaml.
# - before_reach_fix/ (no demos, 20k steps, before the reset and SAC-sampling fixes): the same bench over
#   rl_task/rl_gt/rl_rapl/rl_rlhf/rl_unaligned.yaml and rl_task/rl_task_plus_rapl/rl_task_plus_rlhf.yaml.
# the OT rewards against the closest of 6 expert demos (both sides of the zone), with the reference evaluation's
# per-step Spearman beside the episode one; run here as two processes (seeds 0-2 and 3-4, --out <dir>_b), merged
.venv/bin/robo-reward rapl configs/rapl/pipeline_experts.yaml
mkdir -p benchmarks/rapl/alignment/pipeline_experts
cp runs/rapl/pipeline_experts/{results.csv,summary.csv,summary.md,config.json} benchmarks/rapl/alignment/pipeline_experts/
.venv/bin/python benchmarks/rapl/paired.py runs/rapl/pipeline_projector/results.csv runs/rapl/pipeline_experts/results.csv
# RL with the closest-of-6 term (its seed-0 150-triplet model; the projector-only one-demo model beside it), 40k and 80k
.venv/bin/robo-reward rapl configs/rapl/pipeline_experts.yaml --set 'seeds=[0]' --set 'budgets=[150]'
.venv/bin/robo-reward rapl configs/rapl/pipeline_projector.yaml --set 'seeds=[0]' --set 'budgets=[150]'
.venv/bin/robo-reward bench configs/rapl/rl_task_plus_rapl_experts_demos.yaml configs/rapl/rl_task_plus_rapl_projector_demos.yaml \
  --seeds 5 --jobs 2 --out runs/rapl/rl_sac_demos_experts --no-progress
.venv/bin/robo-reward bench configs/rapl/rl_task_demos.yaml configs/rapl/rl_task_plus_rapl_experts_demos.yaml \
  --set budget.total_timesteps=80000 --seeds 5 --jobs 2 --out runs/rapl/rl_sac_demos_experts_80k --no-progress
for d in rl_sac_demos_experts rl_sac_demos_experts_80k; do
  mkdir -p benchmarks/rapl/$d
  cp runs/rapl/$d/{summary.md,summary.csv,results.csv,curves.png,curves_progress.png} benchmarks/rapl/$d/
done
# validation only (seeds 5-6): 25-frame alignment videos against the default 10
for s in 5 2; do
  .venv/bin/robo-reward rapl configs/rapl/pipeline_experts.yaml --set 'seeds=[5,6]' --set rollouts.transfer=0 \
    --set rollouts.frame_stride=$s --out runs/rapl/val/stride$s
  mkdir -p benchmarks/rapl/alignment/validation_stride/stride$s
  cp runs/rapl/val/stride$s/{results.csv,summary.csv,summary.md,config.json} benchmarks/rapl/alignment/validation_stride/stride$s/
done
