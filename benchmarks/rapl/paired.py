"""Paired comparison of two `robo-reward rapl` result tables, cell by cell (seed, budget).

For each method it prints the mean Spearman difference B - A over the shared cells, how many cells B wins, and a
one-sided sign-flip permutation p-value (exact over all 2^n flips) for B > A; then, within each table, RAPL - RLHF.

    python benchmarks/rapl/paired.py A/results.csv B/results.csv
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pandas as pd


def sign_flip_p(diff: np.ndarray) -> float:
    """One-sided exact sign-flip p-value of mean(diff) > 0."""
    observed = diff.mean()
    flips = np.array(list(itertools.product([1.0, -1.0], repeat=len(diff))))
    return float(np.mean((flips * diff).mean(axis=1) >= observed - 1e-12))


def paired(a: pd.DataFrame, b: pd.DataFrame, method_a: str, method_b: str, key: str = "spearman") -> str:
    cells = ["seed", "budget"]
    x = a[a["method"] == method_a].set_index(cells)[key]
    y = b[b["method"] == method_b].set_index(cells)[key]
    diff = (y - x).dropna().to_numpy()
    return (f"{method_b} - {method_a}: mean {diff.mean():+.3f} over {len(diff)} cells, higher in "
            f"{int((diff > 0).sum())}, one-sided sign-flip p = {sign_flip_p(diff):.4f}")


def main(path_a: str, path_b: str) -> None:
    a, b = pd.read_csv(path_a), pd.read_csv(path_b)
    for method in ("rapl", "rlhf"):
        print(f"{path_b} vs {path_a}:", paired(a, b, method, method))
    for name, table in ((path_a, a), (path_b, b)):
        print(f"{name}:", paired(table, table, "rlhf", "rapl"))


if __name__ == "__main__":
    main(*sys.argv[1:3])
