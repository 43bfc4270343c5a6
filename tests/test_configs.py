"""Every YAML under configs/ loads through the one config loader, and the loader's inheritance and errors."""

from __future__ import annotations

import copy
from pathlib import Path

import gymnasium as gym
import pytest
import yaml

import robo_reward  # noqa: F401  (registers the package's envs)
from robo_reward.config import (
    ConfigError,
    ExperimentConfig,
    load_any,
    load_config,
    read_config_data,
    resolve_references,
)
from robo_reward.runner import build_design

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


def _artefacts(node: object) -> list[str]:
    """Paths under runs/ a config reads (made by a pipeline such as ``robo-reward dopamine-grm``)."""
    if isinstance(node, dict):
        return [p for v in node.values() for p in _artefacts(v)]
    if isinstance(node, list):
        return [p for v in node for p in _artefacts(v)]
    return [node] if isinstance(node, str) and node.startswith("runs/") else []


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(ROOT / "configs")) for p in CONFIGS])
def test_every_config_loads(path: Path) -> None:
    if "robots" in path.parts:
        from robo_reward.hardware.profile import load_profile

        load_profile(path)
        return
    cfg = load_any(path)
    if not isinstance(cfg, ExperimentConfig):
        gym.spec(cfg.env_id)  # type: ignore[attr-defined]
        return
    gym.spec(cfg.env.id)
    missing = [p for p in _artefacts(cfg.reward.model_dump()) if not (ROOT / p).exists()]
    if not missing:
        build_design(cfg.reward)


def test_variants_hold_only_what_differs() -> None:
    """A config with a base: repeats none of its base's top-level sections verbatim."""
    for path in CONFIGS:
        raw = yaml.safe_load(path.read_text()) or {}
        if "base" not in raw:
            continue
        parent = read_config_data(path.parent / raw["base"])
        same = [k for k, v in raw.items() if k != "base" and parent.get(k) == v]
        assert not same, f"{path.relative_to(ROOT)} repeats {same} from its base"


def test_variants_patch_terms_rather_than_restate_them() -> None:
    """A variant whose reward.terms list has its base's term names, in order, restates them: it should patch the
    fields that differ by name (``terms: {dopamine: {shaping: naive}}``)."""
    for path in CONFIGS:
        raw = yaml.safe_load(path.read_text()) or {}
        terms = (raw.get("reward") or {}).get("terms")
        if "base" not in raw or not isinstance(terms, list):
            continue
        base_terms = (read_config_data(path.parent / raw["base"]).get("reward") or {}).get("terms") or []
        names = [t.get("name") for t in terms if isinstance(t, dict)]
        assert names != [t.get("name") for t in base_terms], (
            f"{path.relative_to(ROOT)} restates its base's terms {names}; patch the fields that differ instead")


def _write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_base_deep_merges_and_replaces_lists(tmp_path: Path) -> None:
    _write(tmp_path, "parent.yaml", {"name": "p", "env": {"id": "CartPole-v1", "n_envs": 2},
                                     "agent": {"kwargs": {"n_steps": 64, "gamma": 0.9}}, "seeds": [0, 1, 2]})
    (tmp_path / "sub").mkdir()
    child = _write(tmp_path / "sub", "child.yaml", {"base": "../parent.yaml", "name": "c",
                                                    "agent": {"kwargs": {"gamma": 0.95}}, "seeds": [7]})
    cfg = load_config(child, ["env.n_envs=3"])
    assert (cfg.name, cfg.env.id, cfg.env.n_envs) == ("c", "CartPole-v1", 3)
    assert cfg.agent.kwargs == {"n_steps": 64, "gamma": 0.95}
    assert cfg.seeds == [7]
    grandchild = _write(tmp_path / "sub", "gc.yaml", {"base": "child.yaml", "seed": 4})
    assert load_config(grandchild).agent.kwargs["gamma"] == 0.95


def test_a_variant_with_another_algo_does_not_inherit_the_base_agent_kwargs(tmp_path: Path) -> None:
    _write(tmp_path, "ppo.yaml", {"env": {"id": "Pendulum-v1"}, "agent": {"algo": "PPO", "policy": "MlpPolicy",
                                                                         "kwargs": {"n_epochs": 5, "gamma": 0.9}}})
    sac = load_config(_write(tmp_path, "sac.yaml", {"base": "ppo.yaml", "agent": {"algo": "SAC",
                                                                               "kwargs": {"tau": 0.01}}}))
    assert (sac.agent.algo, sac.agent.policy, sac.agent.kwargs) == ("SAC", "MlpPolicy", {"tau": 0.01})
    same = load_config(_write(tmp_path, "ppo2.yaml", {"base": "ppo.yaml", "agent": {"algo": "PPO",
                                                                                 "kwargs": {"gamma": 0.99}}}))
    assert same.agent.kwargs == {"n_epochs": 5, "gamma": 0.99}
    bare = load_config(_write(tmp_path, "bare.yaml", {"base": "sac.yaml", "seed": 3}))
    assert bare.agent.kwargs == {"tau": 0.01}


def test_a_mapping_patches_the_base_terms_by_name(tmp_path: Path) -> None:
    rnd = {"name": "rnd", "lr": 0.001, "model": {"hidden": [64], "out": 8}}
    _write(tmp_path, "parent.yaml", {"env": {"id": "CartPole-v1"}, "reward": {"terms": [
        {"name": "goal_distance", "delta": [0]}, rnd, {"name": "extrinsic"}]}})
    child = _write(tmp_path, "child.yaml", {"base": "parent.yaml", "reward": {"terms": {
        "rnd": {"model": {"out": 16}, "lr": None}, "goal_distance": None}}})
    terms = read_config_data(child)["reward"]["terms"]
    assert terms == [{"name": "rnd", "model": {"hidden": [64], "out": 16}}, {"name": "extrinsic"}]
    replaced = _write(tmp_path, "list.yaml", {"base": "parent.yaml", "reward": {"terms": [{"name": "extrinsic"}]}})
    assert read_config_data(replaced)["reward"]["terms"] == [{"name": "extrinsic"}]
    with pytest.raises(ConfigError, match=r"\['rdn'\] patch no entry of the base's terms.*'rnd'"):
        read_config_data(_write(tmp_path, "typo.yaml", {"base": "parent.yaml", "reward": {"terms": {"rdn": {}}}}))
    with pytest.raises(ConfigError, match=r"terms.rnd: a patch must be a mapping of the fields to change"):
        read_config_data(_write(tmp_path, "named.yaml", {"base": "parent.yaml",
                                                         "reward": {"terms": {"rnd": {"name": "rnd"}}}}))
    with pytest.raises(ConfigError, match=r"no base: config gives a terms list"):
        load_config(_write(tmp_path, "orphan_patch.yaml", {"env": {"id": "CartPole-v1"},
                                                           "reward": {"terms": {"rnd": {"lr": 1.0}}}}))


def test_references_read_the_final_value_and_bad_ones_are_named(tmp_path: Path) -> None:
    term = {"name": "goal_distance", "delta": "${env.kwargs.delta}"}
    parent = _write(tmp_path, "parent.yaml", {"env": {"id": "CartPole-v1", "kwargs": {"delta": [0, 1]}},
                                              "agent": {"kwargs": {"policy_kwargs": "${env.kwargs}"}},
                                              "reward": {"terms": [term]}})
    child = _write(tmp_path, "child.yaml", {"base": "parent.yaml", "env": {"kwargs": {"delta": [2]}}})
    data = load_config(child, ["env.kwargs.extra=3"]).model_dump()
    assert data["reward"]["terms"][0]["delta"] == [2]
    assert data["agent"]["kwargs"]["policy_kwargs"] == {"delta": [2], "extra": 3}
    data["agent"]["kwargs"]["policy_kwargs"]["delta"].append(9)
    assert load_config(parent).model_dump()["env"]["kwargs"] == {"delta": [0, 1]}
    assert load_config(parent, ["seed=${seeds.1}", "seeds=[4, 5]"]).seed == 5
    with pytest.raises(ConfigError, match=r"reward.terms.0.delta refers to \$\{env.kwargs.delt\}.*did you mean "
                                          r"\$\{env.kwargs.delta\}"):
        load_config(parent, ["reward.terms.0.delta=${env.kwargs.delt}"])
    with pytest.raises(ConfigError, match=r"refers back to itself \(env.kwargs -> env.kwargs\)"):
        load_config(parent, ["env.kwargs.self=${env.kwargs}"])
    with pytest.raises(ConfigError, match=r"env.id is 'x\$\{name\}'; a reference must be the whole value"):
        load_config(parent, ["env.id=x${name}"])


def test_references_copy_nest_and_escape() -> None:
    data = {"env": {"kwargs": {"box": [1, 2]}}, "a": "${env.kwargs}", "b": ["${a}", {"c": "${env.kwargs.box.1}"}],
            "cmd": "echo $${HOME}"}
    before = copy.deepcopy(data)
    out = resolve_references(data)
    assert out["a"] == {"box": [1, 2]} and out["b"] == [{"box": [1, 2]}, {"c": 2}] and out["cmd"] == "echo ${HOME}"
    assert data == before
    assert out["a"]["box"] is not out["env"]["kwargs"]["box"] and out["b"][0]["box"] is not out["a"]["box"]
    with pytest.raises(ConfigError, match=r"refers back to itself \(b -> a -> b\)"):
        resolve_references({"a": {"x": "${b}"}, "b": {"y": "${a}"}})


def test_loader_errors_name_the_problem(tmp_path: Path) -> None:
    loop = _write(tmp_path, "loop.yaml", {"base": "loop.yaml"})
    with pytest.raises(ConfigError, match="inherits from itself"):
        load_config(loop)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(_write(tmp_path, "orphan.yaml", {"base": "missing.yaml"}))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nenv: {id: CartPole-v1\nagent: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+:\d+: YAML syntax error"):
        load_config(bad)
    ok = _write(tmp_path, "ok.yaml", {"env": {"id": "CartPole-v1"}, "seeds": [0, 1]})
    with pytest.raises(ConfigError, match=r"unknown key 'agent.algoo'.*did you mean 'algo'"):
        load_config(ok, ["agent.algoo=PPO"])
    with pytest.raises(ConfigError, match=r"must look like key.sub=value"):
        load_config(ok, ["agent.algo"])
    with pytest.raises(ConfigError, match=r"does not lead to a settable field"):
        load_config(ok, ["seeds.9=1"])
    with pytest.raises(ConfigError, match=r"kind: 'grm_pipline' is not a config kind.*did you mean 'grm_pipeline'"):
        load_any(_write(tmp_path, "kind.yaml", {"kind": "grm_pipline"}))
    grm = _write(tmp_path, "grm.yaml", {"kind": "grm_pipeline", "train_variants": {"a": {}}, "heldout_variant": {}})
    with pytest.raises(ConfigError, match=r"is a 'grm_pipeline' config but this command runs 'experiment'"):
        load_config(grm)
    with pytest.raises(ConfigError, match=r"unknown key 'pretrain.stepz'"):
        load_any(grm, ["pretrain.stepz=3"])
