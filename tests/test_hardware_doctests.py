"""The docstring examples of the ROS-free hardware modules run (they are the modules' usage documentation)."""

import doctest
import importlib

import pytest

MODULES = ["profile", "convert", "safety", "transport"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"robo_reward.hardware.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
