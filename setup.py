"""Maps the product's top-level folders onto one import package.

``envs/``, ``agents/`` and ``hardware/`` live beside ``robo_reward/`` in the repository but install as
``robo_reward.envs``, ``robo_reward.agents`` and ``robo_reward.hardware`` (so nothing called ``envs`` lands in
site-packages). Everything else is declared in ``pyproject.toml``.
"""

from setuptools import find_packages, setup

SUBPACKAGES = {"envs": "envs", "agents": "agents", "hardware": "hardware"}

packages = find_packages(include=["robo_reward", "robo_reward.*"])
package_dir = {"robo_reward": "robo_reward"}
for name, folder in SUBPACKAGES.items():
    package_dir[f"robo_reward.{name}"] = folder
    packages.append(f"robo_reward.{name}")
    packages += [f"robo_reward.{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=package_dir)
