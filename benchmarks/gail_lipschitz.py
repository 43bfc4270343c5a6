"""Lipschitz diagnostic of the GAIL benchmark: the discriminator's gradient norm on penalty points over training.

Runs GAIL with and without the gradient penalty (one seed, same budget as ``gail_bench.py``) and writes, per
discriminator update, the mean ``||grad_(s,a) D||`` on interpolates, the BCE and the expert/policy scores, to
``results/gail/lipschitz.csv``; the means over the last quarter of training go to ``results/gail/lipschitz.md``.

    MINARI_DATASETS_PATH=runs/minari python benchmarks/gail_lipschitz.py --task InvertedPendulum-v5
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import warnings
from pathlib import Path

import numpy as np
from gail_bench import OUT, TASKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="InvertedPendulum-v5", choices=list(TASKS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MINARI_DATASETS_PATH", str(Path("runs/minari").resolve()))
    from robo_reward.agents.gail import GAILConfig, train

    spec = TASKS[args.task]
    rows, lines = [], [f"# Discriminator gradient norm on interpolates, {args.task}, seed {args.seed}", "",
                        "| method | mean grad norm, last quarter | max | final BCE | final D(expert) | final D(policy) | "
                        "final normalised return |", "|---|---|---|---|---|---|---|"]
    for method, kwargs in (("gail_gp", {}), ("gail_nogp", {"penalty": "none"})):
        cfg = GAILConfig(env_id=args.task, demos=spec["dataset"], total_steps=spec["steps"], eval_every=spec["steps"],
                         d_every=20, seed=args.seed, agent_kwargs=spec["agent_kwargs"], reward_kwargs=kwargs)
        result = train(cfg)
        hist = result["discriminator"]
        for h in hist:
            rows.append({"method": method, **h})
        norms = np.array([h["grad_norm"] for h in hist])
        tail = hist[-max(1, len(hist) // 4):]
        refs = json.loads((OUT / "references.json").read_text())[args.task]
        norm_ret = (result["curve"][-1]["return"] - refs["random"]) / (refs["expert"] - refs["random"])
        lines.append(f"| {method} | {np.mean([h['grad_norm'] for h in tail]):.2f} | {norms.max():.2f} | "
                     f"{np.mean([h['bce'] for h in tail]):.3f} | {np.mean([h['d_expert'] for h in tail]):.3f} | "
                     f"{np.mean([h['d_policy'] for h in tail]):.3f} | {norm_ret:.3f} |")
        print(lines[-1], flush=True)
    with open(OUT / "lipschitz.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (OUT / "lipschitz.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
