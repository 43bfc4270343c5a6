#!/usr/bin/env bash
# The task suite on the oldest MuJoCo that pyproject.toml allows (3.3.0, the version Meta-World 3.1.1 pins): a
# second venv with every pin of requirements.lock except MuJoCo's (checked to resolve with a pip dry run), then the
# env tests and the envs' docstring examples. Run after scripts/test.sh, so pip reuses its cached wheels.
# MUJOCO_FLOOR and MUJOCO_FLOOR_VENV override the version and the venv's path.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${MUJOCO_FLOOR:-3.3.0}"
venv="${MUJOCO_FLOOR_VENV:-/tmp/venv-mujoco-$version}"
lock="$(mktemp)"
trap 'rm -f "$lock"' EXIT
grep -vE '^mujoco(-core|-studio)?==' requirements.lock >"$lock"
echo "mujoco==$version" >>"$lock"
start=$SECONDS
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --no-compile --upgrade "pip>=24"
"$venv/bin/python" -m pip install -q --no-compile -r "$lock"
"$venv/bin/python" -m pip install -q --no-compile --no-deps -e .
"$venv/bin/python" -m pip check
"$venv/bin/python" -c "import mujoco; assert mujoco.__version__ == '$version', mujoco.__version__"
echo "mujoco-floor: venv with mujoco $version in $((SECONDS - start)) s"
export MUJOCO_GL="${MUJOCO_GL:-egl}" PYTHONHASHSEED=0 WANDB_MODE=offline
"$venv/bin/python" -m pytest -n 2 --dist loadfile -p no:cacheprovider -q \
  tests/test_envs_api.py tests/test_envs_cameras.py tests/test_envs_demos.py tests/test_envs_experts.py \
  tests/test_doctests.py -k "not test_docstring_examples or robo_reward.envs" "$@"
echo "mujoco-floor: done in $((SECONDS - start)) s"
