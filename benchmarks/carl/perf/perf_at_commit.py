"""Run ``robo-reward perf`` with CaRL's module taken from an earlier commit, for a same-session before/after.

The entry point ``carl = robo_reward.methods.carl:CarlReward`` resolves through ``sys.modules``, so the earlier
file is loaded under that name before the CLI's ``main()`` runs; everything else is today's package::

    python benchmarks/carl/perf/perf_at_commit.py fab13a6 --env robo_reward/DrivingRoute-v0 --reward carl \
        --n-envs 1 8 32 --steps 8000 --repeats 5 --out benchmarks/carl/perf/numpy
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from robo_reward.cli import main

MODULE = "robo_reward.methods.carl"


def module_at(commit: str, name: str = MODULE) -> ModuleType:
    """Import ``robo_reward/methods/carl.py`` as it was at ``commit`` under ``name`` (registered in
    ``sys.modules``, so the package's entry point finds it when ``name`` is :data:`MODULE`)."""
    source = subprocess.run(["git", "show", f"{commit}:robo_reward/methods/carl.py"], check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "carl.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    module_at(sys.argv[1])
    raise SystemExit(main(["perf", *sys.argv[2:]]))
