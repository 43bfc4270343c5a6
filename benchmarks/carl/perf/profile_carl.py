"""CaRL's own cost, apart from the adapter: time ``CarlReward.evaluate`` on 2000 recorded vector steps of
``robo_reward/DrivingRoute-v0`` (8 envs, random actions), median-free mean over 3 passes of process CPU time;
``prof`` as an argument adds a cProfile listing. Output: ``benchmarks/carl/perf/profile.txt``.

Run through the slot: ``/tmp/slot .venv/bin/python benchmarks/carl/perf/profile_carl.py prof``.
"""

import cProfile
import pstats
import sys
import time

import numpy as np
from stable_baselines3.common.env_util import make_vec_env

import robo_reward  # noqa: F401  (registers the envs)
from robo_reward.methods.carl import CarlReward
from robo_reward.protocol import TransitionBatch

n = 8
venv = make_vec_env("robo_reward/DrivingRoute-v0", n_envs=n, seed=0)
rng = np.random.default_rng(0)
batches = []
obs = venv.reset()
for _ in range(2000):
    a = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    a[:, 1] = abs(a[:, 1])
    o2, r, d, infos = venv.step(a)
    batches.append(TransitionBatch(obs, a, o2, r.astype(np.float64), d & False, d & False, infos))
    obs = o2
rew = CarlReward()
rew.bind(venv.observation_space, venv.action_space, n)
rew.reset(obs, np.ones(n, bool))


def run() -> None:
    for b in batches:
        rew.evaluate(b)


run()
t0 = time.process_time()
for _ in range(3):
    run()
dt = (time.process_time() - t0) / (3 * len(batches))
print(f"evaluate: {dt * 1e6:.1f} us per vector step = {dt * 1e6 / n:.2f} us per env step")
if "prof" in sys.argv:
    cProfile.run("run()", "/tmp/carl_profile.out")
    pstats.Stats("/tmp/carl_profile.out").sort_stats("tottime").print_stats(12)
