"""Every ``>>>`` example in the installed package runs (they are the modules' usage documentation).

Modules are collected from the package itself (``robo_reward`` and its ``envs``, ``agents`` and ``hardware``
subpackages), so a new module's examples run without editing this file. Two guards keep "every" honest: each
source file under the four folders that holds a ``>>>`` line must be one of the collected modules, and each
module's ``>>>`` lines must all be examples the doctest finder sees (none hidden in a nested function or a
string it does not read).
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"robo_reward": "robo_reward", "envs": "robo_reward.envs", "agents": "robo_reward.agents",
           "hardware": "robo_reward.hardware"}
OPTIONAL_IMPORTS = {
    "rclpy": "needs rclpy, the ROS 2 client (pip install 'robo-reward[ros2]')",
    "rospy": "needs rospy, ROS 1 (Debian's ros-core)",
}
"""A module whose import fails on one of these is skipped with the reason; any other import error fails."""
SKIP: dict[str, str] = {}
"""Modules whose examples are not run, with the reason (none today)."""
PROMPT = re.compile(r"^\s*>>> ", re.M)


def _module_names() -> list[str]:
    names = set(FOLDERS.values())
    for package in FOLDERS.values():
        path = importlib.import_module(package).__path__
        names.update(m.name for m in pkgutil.walk_packages(path, package + ".", onerror=lambda _: None))
    return sorted(names)


def _source_modules_with_examples() -> set[str]:
    found = set()
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            if not PROMPT.search(path.read_text(encoding="utf-8")):
                continue
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.add(".".join((package, *parts)))
    return found


MODULES = _module_names()


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        if root in OPTIONAL_IMPORTS:
            pytest.skip(f"{name}: {OPTIONAL_IMPORTS[root]}")
        raise


def test_every_source_file_with_examples_is_collected():
    missing = _source_modules_with_examples() - set(MODULES)
    assert len(MODULES) > 40
    assert not missing, f"modules with >>> examples that the package walk does not reach: {sorted(missing)}"


@pytest.mark.parametrize("name", [n for n in MODULES if n in _source_modules_with_examples()])
def test_docstring_examples(name: str):
    if name in SKIP:
        pytest.skip(SKIP[name])
    module = _import(name)
    tests = doctest.DocTestFinder().find(module)
    source = Path(module.__file__).read_text(encoding="utf-8")
    n_examples = sum(len(t.examples) for t in tests)
    assert n_examples == len(PROMPT.findall(source)), (
        f"{name} has {len(PROMPT.findall(source))} '>>>' lines but doctest finds {n_examples} examples: "
        "an example sits where the finder does not look (a nested function, a non-docstring string)"
    )
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted == n_examples > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see stdout)"
