"""CaRL's own cost, apart from the adapter and the env: ``CarlReward.evaluate`` on 2000 recorded vector steps of
``robo_reward/DrivingRoute-v0`` (random actions), against the raw env step timed in the same process, in 20 short
interleaved rounds (process CPU time, median of rounds), for today's module and the one at ``--commit`` (the
numpy version before the kernel). The last columns time whole ``RewardVecEnvWrapper`` steps, as ``robo-reward
perf`` does, but in rounds of 250 vector steps so that a machine whose speed drifts pairs them closely: CaRL's
added cost is its wrapped step minus the wrapped one-line numpy reward's (which pays the adapter's fixed cost),
as a share of the raw step. Output on stdout (``benchmarks/carl/perf/profile.md``)::

    python benchmarks/carl/perf/profile_carl.py --commit fab13a6 --n-envs 8 64 > benchmarks/carl/perf/profile.md
"""

import argparse
import time

import numpy as np
from perf_at_commit import module_at  # this folder (the script's own directory is on sys.path)
from stable_baselines3.common.env_util import make_vec_env

import robo_reward  # noqa: F401  (registers the envs)
from robo_reward.methods.carl import CarlReward
from robo_reward.perf import _venv
from robo_reward.protocol import TransitionBatch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commit", default="fab13a6")
    parser.add_argument("--n-envs", type=int, nargs="+", default=[8])
    args = parser.parse_args()
    old = module_at(args.commit, "carl_at_commit").CarlReward
    print(f"| envs | env step (us) | kernel evaluate (us per env step) | share | {args.commit} evaluate | share | "
          "wrapped numpy reward (us) | wrapped CaRL (us) | CaRL's added share (IQR over rounds) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.n_envs:
        venv = make_vec_env("robo_reward/DrivingRoute-v0", n_envs=n, seed=0)
        rng = np.random.default_rng(0)
        actions = rng.uniform(-1, 1, (2000, n, 2)).astype(np.float32)
        actions[..., 1] = abs(actions[..., 1])
        obs, batches = venv.reset(), []
        for a in actions:
            o2, r, d, infos = venv.step(a)
            batches.append(TransitionBatch(obs, a, o2, r.astype(np.float64), d & False, d & False, infos))
            obs = o2
        rewards = {}
        for name, cls in (("new", CarlReward), ("old", old)):
            rew = cls()
            rew.bind(venv.observation_space, venv.action_space, n)
            rew.reset(obs, np.ones(n, bool))
            rewards[name] = rew
        times: dict[str, list[float]] = {"env": [], "new": [], "old": [], "raw": [], "numpy": [], "reward:carl": []}
        wrapped = {m: _venv(m, "robo_reward/DrivingRoute-v0", n, (64, 64)) for m in ("raw", "numpy", "reward:carl")}
        for v in wrapped.values():
            v.reset()
            for a in actions[:50]:
                v.step(a)
        for b in batches[:50]:
            for rew in rewards.values():
                rew.evaluate(b)
        for _ in range(20):
            for m, v in wrapped.items():
                t0 = time.process_time()
                for a in actions[:250]:
                    v.step(a)
                times[m].append((time.process_time() - t0) / (250 * n))
            t0 = time.process_time()
            for a in actions[:500]:
                venv.step(a)
            times["env"].append((time.process_time() - t0) / (500 * n))
            for name, rew in rewards.items():
                t0 = time.process_time()
                for b in batches:
                    rew.evaluate(b)
                times[name].append((time.process_time() - t0) / (len(batches) * n))
        env, new, old_t, num, carl = (float(np.median(times[k])) * 1e6 for k in ("env", "new", "old", "numpy",
                                                                                   "reward:carl"))
        added = (np.asarray(times["reward:carl"]) - np.asarray(times["numpy"])) / np.asarray(times["raw"])
        q25, q50, q75 = np.quantile(added, [0.25, 0.5, 0.75])
        print(f"| {n} | {env:.1f} | {new:.2f} | {new / env:.1%} | {old_t:.2f} | {old_t / env:.1%} | {num:.1f} | "
              f"{carl:.1f} | {q50:.1%} ({q25:.1%} to {q75:.1%}) |", flush=True)


if __name__ == "__main__":
    main()
