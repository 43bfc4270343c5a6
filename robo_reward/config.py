"""Experiment configs: one YAML file per experiment, validated with pydantic.

An unknown key or a bad value is an error that names the key and lists the valid ones. ``--set a.b=value``
overrides any field from the command line (values parse as YAML: ``--set agent.kwargs.gamma=0.95``). A string
value ``${env.kwargs}`` is the value at that dotted path (:func:`resolve_references`).

Example (``configs/quickstart/reach_shaped.yaml``)::

    name: shaped
    env: {id: robo_reward/Reach-v0, n_envs: 4}
    reward:
      terms:
        - {name: potential_shaping, potential: {name: goal_distance, delta: [10, 11, 12]}}
    agent: {algo: PPO, kwargs: {n_steps: 256}}
    budget: {total_timesteps: 30000}
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from robo_reward.errors import UserError

M = TypeVar("M", bound=BaseModel)


class ConfigError(UserError, ValueError):
    """A config file or override that does not validate; the message names each bad key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class WrapperConfig(_Strict):
    """A Gymnasium wrapper applied to each env before the reward sees it (``"module:Class"`` + kwargs)."""

    entry_point: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class EnvConfig(_Strict):
    """Which env to train on and how many copies to step together."""

    id: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    n_envs: int = Field(default=4, ge=1)
    vec_env: Literal["dummy", "subproc"] = "dummy"
    max_episode_steps: int | None = Field(default=None, ge=1)
    wrappers: list[WrapperConfig] = Field(default_factory=list)
    policy_obs: str | None = None  # key of a dict observation the agent sees (the reward still sees all of it)


class RewardConfig(_Strict):
    """The reward design: the agent is paid ``extrinsic_weight * r_env + sum_i weight_i * term_i``.

    Each term is a registry spec, ``{name: <reward>, weight: 1.0, <kwargs>...}``. No terms means the env's own
    reward (the baseline every benchmark includes).
    """

    extrinsic_weight: float = 1.0
    terms: list[dict[str, Any]] = Field(default_factory=list)
    checkpoint: str | None = None

    @field_validator("terms")
    @classmethod
    def _named(cls, terms: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from robo_reward.registry import reward_names

        for i, term in enumerate(terms):
            name = term.get("name")
            if name not in reward_names():
                hint = difflib.get_close_matches(str(name), reward_names(), n=1)
                raise ValueError(f"terms[{i}].name={name!r} is not a registered reward"
                                 + (f" (did you mean {hint[0]!r}?)" if hint else "")
                                 + f"; registered: {', '.join(reward_names())}")
        return terms


class WarmStartConfig(_Strict):
    """Behaviour-clone the policy on demonstrations before RL (:mod:`robo_reward.warmstart`)."""

    dataset: str  # Minari dataset id (under root) or folder
    root: str | None = None
    episodes: int | None = Field(default=None, ge=1)  # first N episodes; all when unset
    obs_key: str | None = None  # key of dict demo observations; defaults to env.policy_obs
    epochs: int = Field(default=200, ge=1)
    batch_size: int = Field(default=256, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    log_std: float | None = -1.0  # the policy's log std after cloning; null keeps the initial one


class DemoBufferConfig(_Strict):
    """Write demonstrations into an off-policy learner's replay buffer before RL (:mod:`robo_reward.runner`).

    Each demo episode is replayed through the reward design (its ``reset`` once per episode, then every step), so
    stored demo transitions relabel like the agent's own. ``fraction`` keeps the first part of the episodes
    (0.2: one fifth), after ``episodes`` if both are set.
    """

    dataset: str  # Minari dataset id (under root) or folder
    root: str | None = None
    episodes: int | None = Field(default=None, ge=1)  # first N episodes; all when unset
    fraction: float = Field(default=1.0, gt=0, le=1)
    obs_key: str | None = None  # key of dict demo observations the policy sees; defaults to env.policy_obs


class AgentConfig(_Strict):
    """The learner: an SB3 (or sb3-contrib, or robo_reward.agents) algorithm and its constructor kwargs."""

    algo: str = "PPO"
    policy: str = "MlpPolicy"
    kwargs: dict[str, Any] = Field(default_factory=dict)
    relabel: bool | None = None  # off-policy: recompute rewards at sample time (default: when the reward has terms)
    torch_threads: int = Field(default=1, ge=1)  # small nets gain little from more; on a busy CPU more threads thrash
    warm_start: WarmStartConfig | None = None  # behaviour cloning on demos before RL (PPO/A2C, Box actions)
    demo_buffer: DemoBufferConfig | None = None  # off-policy: demos written into the replay buffer before RL
    backend: Literal["sb3", "rllib"] = "sb3"  # rllib: Ray RLlib's PPO (robo_reward.agents.rllib; the ray extra)
    rllib: dict[str, Any] = Field(default_factory=dict)  # num_env_runners, num_cpus, other AlgorithmConfig keys


class BudgetConfig(_Strict):
    total_timesteps: int = Field(default=50_000, ge=1)
    checkpoint_every: int = Field(default=10_000, ge=1)


EVAL_COLUMNS = {"success": "success_rate", "return": "return_mean", "progress": "final_progress"}
FINAL_KEYS = {"success": "final_success", "return": "final_return", "progress": "final_progress"}


class EvalConfig(_Strict):
    """Evaluation on the env's own reward (never the designed one), every ``every`` env steps."""

    every: int = Field(default=5_000, ge=1)
    episodes: int = Field(default=10, ge=1)
    env_kwargs: dict[str, Any] = Field(default_factory=dict)  # overrides for the eval env (e.g. obs_mode: state)
    n_envs: int = Field(default=1, ge=1)
    deterministic: bool = True
    metric: Literal["success", "return", "progress"] = "success"  # progress: the env's info["progress"] at the end
    threshold: float = 0.9
    info_metrics: list[str] = Field(default_factory=list)  # info keys averaged over episode ends -> eval.csv "info/<key>"


class LoggingConfig(_Strict):
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "robo_reward"
    progress: bool = True


Behaviour = Literal["random", "expert", "policy"]


class AuditConfig(_Strict):
    """What ``robo-reward audit`` rolls out (:mod:`robo_reward.audit`)."""

    behaviours: list[Behaviour] = Field(default_factory=lambda: list(get_args(Behaviour)))
    expert: str | None = None  # "module:function" building a scripted expert, f(env, noise=, seed=)
    expert_noise: list[float] = Field(default_factory=lambda: [0.0, 0.3])
    episodes: int = Field(default=10, ge=1)
    seed: int = 12_345
    target: str = "progress"  # the privileged info key each term is correlated with (e.g. preference_reward)


class ExperimentConfig(_Strict):
    """One experiment: env, reward design, agent, budget, seeds, evaluation and logging."""

    kind: Literal["experiment"] = "experiment"
    name: str = "experiment"
    env: EnvConfig
    reward: RewardConfig = Field(default_factory=RewardConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    seed: int = 0
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    eval: EvalConfig = Field(default_factory=EvalConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    output_dir: str = "runs"

    def dump(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _model_for(loc: Sequence[str | int], root: type[BaseModel]) -> type[BaseModel] | None:
    """The config section (model) that holds the last key of ``loc``."""
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        candidates = [annotation, *get_args(annotation)]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return model


def _explain(exc: ValidationError, source: str, root: type[BaseModel]) -> ConfigError:
    lines = [f"invalid config {source}:"]
    for err in exc.errors():
        loc = list(err["loc"])
        key = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            model = _model_for(loc, root)
            valid = sorted(model.model_fields) if model else []
            hint = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            lines.append(f"  unknown key '{key}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                         + (f"; valid keys here: {', '.join(valid)}" if valid else ""))
        else:
            lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
    return ConfigError("\n".join(lines))


def parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``["agent.kwargs.gamma=0.95", ...]`` applied to a nested dict (lists indexed by number).

    >>> apply_overrides({"agent": {"kwargs": {}}, "seeds": [0, 1]}, ["agent.kwargs.gamma=0.95", "seeds.1=7"])
    {'agent': {'kwargs': {'gamma': 0.95}}, 'seeds': [0, 7]}
    """
    data = copy.deepcopy(data)
    for item in overrides:
        path, sep, raw = item.partition("=")
        if not sep or not path.strip():
            raise ConfigError(f"override --set {item!r} must look like key.sub=value (e.g. agent.kwargs.gamma=0.95)")
        try:
            value = parse_value(raw)
        except yaml.YAMLError:
            raise ConfigError(f"override --set {item!r}: the value {raw!r} is not valid YAML; quote it") from None
        keys = path.strip().split(".")
        node: Any = data
        try:
            for k in keys[:-1]:
                node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
            if isinstance(node, list):
                node[int(keys[-1])] = value
            elif isinstance(node, dict):
                node[keys[-1]] = value
            else:
                raise TypeError(type(node).__name__)
        except (ValueError, IndexError, TypeError, AttributeError):
            raise ConfigError(f"override --set {item!r}: {path!r} does not lead to a settable field (a list needs "
                              "a number index within its length, and a value cannot hold sub-keys)") from None
    return data


def deep_merge(base: Mapping[str, Any], delta: Mapping[str, Any]) -> dict[str, Any]:
    """``delta`` over ``base``: mappings merge key by key, anything else (lists included) is replaced.

    One exception keeps a variant to the lines that differ: a mapping given where the base has a list of named
    entries (``reward.terms``) patches those entries by ``name`` (:func:`patch_named`) instead of replacing the
    list. A list given there still replaces it.

    >>> deep_merge({"a": {"x": 1, "y": [1, 2]}, "b": 0}, {"a": {"y": [3]}, "c": 1})
    {'a': {'x': 1, 'y': [3]}, 'b': 0, 'c': 1}
    >>> deep_merge({"terms": [{"name": "rnd", "lr": 1}, {"name": "clip"}]}, {"terms": {"rnd": {"lr": 2}}})
    {'terms': [{'name': 'rnd', 'lr': 2}, {'name': 'clip'}]}
    """
    out = copy.deepcopy(dict(base))
    for key, value in delta.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        elif isinstance(value, Mapping) and _named_entries(out.get(key)):
            out[key] = patch_named(out[key], value, key)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _named_entries(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) and "name" in v for v in value)


def patch_named(entries: list[Mapping[str, Any]], patches: Mapping[str, Any], key: str = "terms") -> list[dict[str, Any]]:
    """``entries`` (a list of mappings with a ``name``) with each ``patches[name]`` deep-merged into the entry of
    that name, in the base's order; a patch of ``null`` removes the entry, and a field set to ``null`` in a patch
    removes that field (so it takes its default; restate the list to pass an explicit None).

    :param entries: the base's list, e.g. ``reward.terms``. :param patches: ``{name: {field: value} | None}``.
    :param key: the list's key, for the error message.
    """
    names = [str(e["name"]) for e in entries]
    unknown = sorted(set(map(str, patches)) - set(names))
    if unknown:
        raise ConfigError(f"{key}: {unknown} patch no entry of the base's {key} (its names: {names}); use one of "
                          f"those names, or give {key} as a list to replace the base's")
    out = []
    for entry in entries:
        name = str(entry["name"])
        if name not in patches:
            out.append(copy.deepcopy(dict(entry)))
        elif patches[name] is None:
            continue
        elif not isinstance(patches[name], Mapping) or "name" in patches[name]:
            raise ConfigError(f"{key}.{name}: a patch must be a mapping of the fields to change (without name:), "
                              f"got {patches[name]!r}; write e.g. {key}: {{{name}: {{field: value}}}}")
        else:
            out.append(_merge_removing(entry, patches[name]))
    return out


def _merge_removing(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge_removing(out[key], value)
        else:
            out[key] = deep_merge({"v": out.get(key)}, {"v": value})["v"]
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; check the path (relative paths are taken from "
                          f"{Path.cwd()})") from None
    except IsADirectoryError:
        raise ConfigError(f"config path {path} is a folder; give a YAML file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: YAML syntax error: {problem}; fix the file at that line") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a YAML mapping (key: value lines) at the top level, "
                          f"got a {type(data).__name__}")
    return data


_REF = re.compile(r"\$\{([^{}]*)\}")


def _lookup(data: Any, path: str) -> Any:
    node = data
    for key in (k.strip() for k in path.split(".")):
        if isinstance(node, list) and key.isascii() and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, Mapping) and key in node:
            node = node[key]
        else:
            raise KeyError(key)
    return node


def _dotted(data: Any, prefix: str = "") -> list[str]:
    if isinstance(data, Mapping):
        return [p for k, v in data.items() for p in [f"{prefix}{k}", *_dotted(v, f"{prefix}{k}.")]]
    return []


def resolve_references(data: dict[str, Any], source: str = "<config>") -> dict[str, Any]:
    """Replace each string value ``${a.b}`` by the value at the dotted path ``a.b`` of ``data``.

    The result is built anew (every mapping and list), so no two places share an object and ``data`` is untouched.

    ``$${`` writes a literal ``${`` (a shell line or a regex in a free-text field).

    Why: a reward term that needs the env's own settings (KAGI's private scene copy: ``env_id: ${env.id}``,
    ``env_kwargs: ${env.kwargs}``) names them once, and a variant's or ``--set``'s change of the env reaches the
    term too instead of leaving a stale copy. Resolved after the ``base:`` chain and the overrides, so a
    reference always reads the final value. The run folder's ``config.yaml`` holds the resolved values, so a
    ``--set`` on a run folder (resume, eval, audit) changes only the field it names.

    :param data: a config mapping (not modified).
    :param source: where it came from, for the error messages.
    """
    def resolve(value: Any, where: str, chain: tuple[str, ...]) -> Any:
        if isinstance(value, Mapping):
            return {k: resolve(v, f"{where}.{k}" if where else str(k), chain) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, f"{where}.{i}", chain) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        if "${" not in value.replace("$${", ""):
            return value.replace("$${", "${")
        match = _REF.fullmatch(value.strip())
        if match is None:
            raise ConfigError(f"{source}: {where} is {value!r}; a reference must be the whole value, like "
                              "'${env.kwargs}'; write $${ for a literal ${")
        target = match.group(1).strip()
        if target in chain:
            raise ConfigError(f"{source}: {where} refers to ${{{target}}}, which refers back to itself "
                              f"({' -> '.join((*chain, target))}); give one of them a value")
        try:
            found = _lookup(data, target)
        except KeyError:
            hint = [h for h in difflib.get_close_matches(target, _dotted(data), n=2) if h != target][:1]
            raise ConfigError(f"{source}: {where} refers to ${{{target}}}, which is not in the config"
                              + (f" (did you mean ${{{hint[0]}}}?)" if hint else "")
                              + "; name a dotted path that the YAML (with its base: chain) writes out: a schema "
                              "default it leaves unwritten cannot be referenced") from None
        return resolve(found, where, (*chain, target))

    return resolve(data, "", ())  # type: ignore[no-any-return]


def read_config_data(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The YAML mapping of ``path`` with its ``base:`` chain resolved (paths relative to the naming file).

    A variant config names its parent with ``base: parent.yaml`` (or a list of parents, merged left to right)
    and holds only what differs: mappings deep-merge, lists and scalars replace, and a mapping over a list of
    named entries patches them by name (:func:`deep_merge`). One rule is specific to the experiment schema: a
    variant that sets another ``agent.algo`` than its base's does not inherit the base's ``agent.kwargs``, which
    are that algorithm's constructor arguments (PPO's ``n_epochs`` is not a parameter of SAC).
    """
    path = Path(path).resolve()
    if path in _chain:
        cycle = " -> ".join(str(p.name) for p in (*_chain, path))
        raise ConfigError(f"config {path} inherits from itself ({cycle}); remove one of the base: entries")
    data = _read_yaml(path)
    bases = data.pop("base", None)
    if bases is None:
        return data
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else list(bases):
        if not isinstance(base, str):
            raise ConfigError(f"{path}: base: must name a YAML file (or a list of them), got {base!r}")
        merged = _merge_variant(merged, read_config_data(path.parent / base, (*_chain, path)))
    return _merge_variant(merged, data)


def _merge_variant(base: Mapping[str, Any], delta: Mapping[str, Any]) -> dict[str, Any]:
    agent, patch = base.get("agent"), delta.get("agent")
    if (isinstance(agent, Mapping) and isinstance(patch, Mapping) and "algo" in patch and "algo" in agent
            and patch["algo"] != agent["algo"]):
        base = {**base, "agent": {k: v for k, v in agent.items() if k != "kwargs"}}
    return deep_merge(base, delta)


def load_config_data(path: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> tuple[dict[str, Any], str]:
    """A config's resolved mapping (``base:`` chain, then ``--set`` overrides) and where it came from."""
    if isinstance(path, Mapping):
        data, source = dict(path), "<mapping>"
        if "base" in data:
            raise ConfigError("a config given as a mapping cannot name a base:; merge it with deep_merge first")
    else:
        data, source = read_config_data(path), str(path)
        terms = data.get("reward", {}).get("terms") if isinstance(data.get("reward"), Mapping) else None
        if isinstance(terms, Mapping):
            raise ConfigError(f"{source}: reward.terms is a mapping {sorted(map(str, terms))}, which patches the "
                              "base's terms by name, but no base: config gives a terms list; name a base with "
                              "those terms or write reward.terms as a list")
    return resolve_references(apply_overrides(data, overrides), source), source


def validate(model: type[M], data: Mapping[str, Any], source: str) -> M:
    """``model.model_validate(data)`` with the package's error style (each bad key named, close matches)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc, source, model) from None


CONFIG_KINDS: dict[str, str] = {
    "experiment": "robo_reward.config:ExperimentConfig",
    "grm_pipeline": "robo_reward.agents.dopamine_grm:GRMPipelineConfig",
    "rapl_pipeline": "robo_reward.methods.rapl.pipeline:RAPLPipelineConfig",
}


def register_config_kind(kind: str, target: str) -> None:
    """Add a config kind (a pipeline's schema, ``"module:Model"``) that :func:`load_any` validates against."""
    if ":" not in target:
        raise ValueError(f"config kind target {target!r} must look like 'package.module:ModelName'")
    CONFIG_KINDS[kind] = target


def config_model(kind: str, source: str = "<config>") -> type[BaseModel]:
    """The schema registered for ``kind`` (imported now)."""
    if kind not in CONFIG_KINDS:
        hint = difflib.get_close_matches(str(kind), CONFIG_KINDS, n=1)
        raise ConfigError(f"{source}: kind: {kind!r} is not a config kind"
                          + (f" (did you mean {hint[0]!r}?)" if hint else "")
                          + f"; known kinds: {', '.join(sorted(CONFIG_KINDS))}")
    module, _, attr = CONFIG_KINDS[kind].partition(":")
    import importlib

    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def load_any(path: str | Path | Mapping[str, Any], overrides: Sequence[str] = (),
             expect: str | None = None) -> BaseModel:
    """Read, override and validate a config of any kind (its ``kind:`` field; default ``experiment``).

    :param expect: the kind the calling command runs; a config of another kind is an error naming both.
    """
    data, source = load_config_data(path, overrides)
    kind = str(data.get("kind", "experiment"))
    if expect is not None and kind != expect:
        raise ConfigError(f"{source} is a '{kind}' config but this command runs '{expect}' configs; "
                          f"use the command for '{kind}' configs or set kind: {expect}")
    return validate(config_model(kind, source), data, source)


def load_config(path: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read (resolving ``base:``), override and validate an experiment config."""
    cfg = load_any(path, overrides, expect="experiment")
    assert isinstance(cfg, ExperimentConfig)
    return cfg
