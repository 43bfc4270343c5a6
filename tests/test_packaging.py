"""The distribution installs robo_reward with envs/, agents/ and hardware/ as its subpackages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_installed_package_imports_all_four(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, capture_output=True)
    assert not (target / "envs").exists() and not (target / "hardware").exists(), "top-level names leaked"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import robo_reward, robo_reward.envs, robo_reward.agents, robo_reward.hardware, robo_reward.methods;"
        "mods = [robo_reward, robo_reward.envs, robo_reward.agents, robo_reward.hardware];"
        "assert all(m.__file__.startswith(sys.argv[1]) for m in mods), [m.__file__ for m in mods];"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    for folder in ("envs", "agents", "hardware"):
        sources = {p.relative_to(ROOT / folder) for p in (ROOT / folder).rglob("*")
                   if p.suffix in {".py", ".xml", ".yaml"} and "__pycache__" not in p.parts}
        installed = {p.relative_to(target / "robo_reward" / folder) for p in (target / "robo_reward" / folder).rglob("*")
                     if p.suffix in {".py", ".xml", ".yaml"}}
        assert sources <= installed, f"{folder}: not installed: {sorted(map(str, sources - installed))}"
    assert (target / "bin" / "robo-reward").exists() or any(target.glob("**/entry_points.txt"))
