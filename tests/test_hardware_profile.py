"""Robot profiles: the shipped ones load, and every mistake is an error naming the key and the valid options."""

from pathlib import Path

import numpy as np
import pytest

from robo_reward.hardware.profile import ProfileError, load_profile, parse_profile

ROBOTS = sorted((Path(__file__).parents[1] / "configs" / "robots").glob("*.yaml"))


def base() -> dict:
    return {
        "name": "t", "control_rate_hz": 25,
        "joints": {"names": ["a", "b"], "position_lower": [-1, -2], "position_upper": [1, 2], "velocity_limit": 0.5},
        "observations": {"q": {"source": "joint_state"}},
        "command": {"interface": "float64_multi_array", "topic": "/c", "scale": 2.0, "max_delta": 0.1},
    }


@pytest.mark.parametrize("path", ROBOTS, ids=[p.stem for p in ROBOTS])
def test_shipped_profiles_load(path):
    profile = load_profile(path)
    assert profile.action_dim == len(profile.command_lower()) == len(profile.command_upper())
    assert (profile.command_lower() < profile.command_upper()).all()


def test_limits_broadcast_and_intersect():
    data = base()
    data["command"]["upper"] = [0.2, 5.0]
    p = parse_profile(data)
    assert p.command_upper().tolist() == [0.2, 0.5]  # explicit bound tighter than the joint limit wins, looser one not
    assert p.command_lower().tolist() == [-0.5, -0.5]
    assert p.max_age("q") == pytest.approx(2 / 25)
    data["command"]["mode"] = "position"
    del data["command"]["upper"]
    assert parse_profile(data).command_lower().tolist() == [-1.0, -2.0]


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d.update(control_rate=50), ["control_rate: unknown key", "valid keys in <top level>:",
                                           "control_rate_hz"]),
    (lambda d: d["command"].update(interface="joint_velocity"),
     ["command.interface", "'joint_velocity'", "'float64_multi_array', 'joint_trajectory' or 'twist'"]),
    (lambda d: d["command"].update(max_delat=0.1), ["command.max_delat: unknown key", "valid keys in command:",
                                                    "max_delta"]),
    (lambda d: d["joints"].update(velocity_limit=[1, 2, 3]), ["joints.velocity_limit has 3 values", "2 joints"]),
    (lambda d: d["joints"].update(names=["a", "a"]), ["repeated: ['a']"]),
    (lambda d: d["joints"].update(position_lower=[1, -2]), ["position_lower must be below", "['a']"]),
    (lambda d: d["observations"].update(cam={"source": "image", "topic": "/c"}), ["observations.cam", "shape"]),
    (lambda d: d["observations"].update(cam={"source": "lidar"}),
     ["observations.cam.source", "'joint_state', 'image' or 'pose'"]),
    (lambda d: d["command"].update(interface="twist", twist_axes=["linear.q"], lower=-1, upper=1),
     ["twist_axes ['linear.q'] are not valid", "angular.z"]),
    (lambda d: d.update(observation_layout="concat", observations={"c": {"source": "image", "topic": "/i",
                                                                        "shape": [8, 8, 3]}}),
     ["concat joins vectors only", "['c']"]),
])
def test_bad_profiles_name_the_key(edit, expected):
    data = base()
    edit(data)
    with pytest.raises(ProfileError) as info:
        parse_profile(data, "robot.yaml")
    message = str(info.value)
    assert "robot.yaml" in message
    for fragment in expected:
        assert fragment in message, message


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ProfileError, match="must be a mapping"):
        load_profile(tmp_path / "list.yaml")


def test_twist_profile_dimensions():
    p = load_profile(Path(__file__).parents[1] / "configs" / "robots" / "mobile_base.yaml")
    assert p.action_dim == 2
    np.testing.assert_allclose(p.command_max_delta(), [0.05, 0.2])
