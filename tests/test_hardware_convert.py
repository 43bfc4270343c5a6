"""Converters without ROS: joint order by name, image encodings and row stride, pose frames, commands."""

from types import SimpleNamespace

import numpy as np
import pytest

from robo_reward.hardware.convert import (
    HeaderData,
    ImageData,
    JointStateData,
    MessageError,
    PoseStampedData,
    action_to_command_values,
    array_to_image,
    command_from_message,
    command_values_to_action,
    image_to_array,
    joint_state_to_array,
    make_command,
    pose_to_array,
    stamp_ns,
)

ORDER = ["j1", "j2", "j3"]


def test_joint_state_reordered_by_name_and_extra_joints_ignored():
    msg = JointStateData(name=["j3", "gripper", "j1", "j2"], position=[3.0, 9.0, 1.0, 2.0],
                         velocity=[-3.0, 0.0, -1.0, -2.0])
    assert joint_state_to_array(msg, ORDER).tolist() == [1.0, 2.0, 3.0]
    assert joint_state_to_array(msg, ORDER, "velocity").tolist() == [-1.0, -2.0, -3.0]


@pytest.mark.parametrize("msg, fragment", [
    (JointStateData(name=["j1", "j3"], position=[1.0, 3.0]), "missing joint 'j2'"),
    (JointStateData(name=["j1", "j2", "j3"], position=[1.0, 2.0]), "'position' has 2 values for 3 joint names"),
    (JointStateData(name=["j1", "j2", "j3"], position=[1.0, np.nan, 3.0]), "joint 'j2' has non-finite position"),
    (JointStateData(name=["j1", "j2", "j3"], position=[1.0, 2.0, np.inf]), "joint 'j3' has non-finite"),
])
def test_bad_joint_states_are_named(msg, fragment):
    with pytest.raises(MessageError, match=fragment.replace("(", r"\(")) as info:
        joint_state_to_array(msg, ORDER, source="/joint_states")
    assert "/joint_states" in str(info.value)


def _rgb(h=6, w=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
@pytest.mark.parametrize("padding", [0, 3])
def test_image_round_trip_with_row_stride(encoding, padding):
    rgb = _rgb()
    msg = array_to_image(rgb, encoding, row_padding=padding)
    assert msg.step == rgb.shape[1] * 3 + padding
    np.testing.assert_array_equal(image_to_array(msg, (6, 5, 3)), rgb)


def test_image_channel_conversions():
    rgb = _rgb()
    bgra = np.concatenate([rgb[:, :, ::-1], np.full((6, 5, 1), 255, np.uint8)], axis=2)
    msg = ImageData(height=6, width=5, encoding="bgra8", step=20, data=bgra.tobytes())
    np.testing.assert_array_equal(image_to_array(msg, (6, 5, 3)), rgb)
    grey = image_to_array(array_to_image(rgb, "rgb8"), (6, 5, 1))
    assert grey.shape == (6, 5, 1) and grey.dtype == np.uint8
    np.testing.assert_allclose(grey[..., 0], rgb @ [0.299, 0.587, 0.114], atol=1.0)


def test_mono16_big_endian_and_float_depth():
    values = np.array([[0, 256, 65535]], dtype=">u2")
    msg = ImageData(height=1, width=3, encoding="mono16", is_bigendian=1, step=6, data=values.tobytes())
    assert image_to_array(msg).reshape(-1).tolist() == [0, 256, 65535]
    assert image_to_array(msg, (1, 3, 1)).reshape(-1).tolist() == [0, 1, 255]
    depth = np.array([[0.0, 0.5, 2.0]], dtype="<f4")
    dmsg = ImageData(height=1, width=3, encoding="32FC1", step=12, data=depth.tobytes())
    assert image_to_array(dmsg, (1, 3, 1)).reshape(-1).tolist() == [0, 128, 255]
    dmsg.data = np.array([[0.0, np.nan, 1.0]], dtype="<f4").tobytes()
    with pytest.raises(MessageError, match="NaN"):
        image_to_array(dmsg)


def test_image_resized_to_policy_input():
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:4] = 200
    out = image_to_array(array_to_image(rgb, "rgb8"), (4, 4, 3))
    assert out.shape == (4, 4, 3)
    assert out[:2].min() == 200 and out[2:].max() == 0  # area interpolation keeps the halves apart


@pytest.mark.parametrize("edit, fragment", [
    (lambda m: setattr(m, "encoding", "yuv422"), "unsupported encoding 'yuv422'"),
    (lambda m: setattr(m, "data", m.data[:-3]), "data has 87 bytes but step\\*height = 15\\*6 = 90"),
    (lambda m: setattr(m, "step", 10), "step 10 is smaller than width\\*channels\\*bytes = 15"),
    (lambda m: setattr(m, "height", 0), "empty image"),
])
def test_bad_images_are_named(edit, fragment):
    msg = array_to_image(_rgb(), "rgb8")
    edit(msg)
    with pytest.raises(MessageError, match=fragment):
        image_to_array(msg, (6, 5, 3), source="/camera")


def test_pose_frame_check():
    pose = PoseStampedData(position=(1.0, 2.0, 3.0), orientation=(0.0, 0.0, 0.0, 1.0),
                           header=HeaderData(frame_id="base_link", stamp_ns=7))
    assert pose_to_array(pose, "base_link").tolist() == [1, 2, 3, 0, 0, 0, 1]
    assert stamp_ns(pose) == 7
    with pytest.raises(MessageError, match="frame 'base_link' but the policy expects frame 'world'"):
        pose_to_array(pose, "world")
    bad = PoseStampedData(orientation=(0.0, 0.0, 0.0, 2.0), header=HeaderData(frame_id="w"))
    with pytest.raises(MessageError, match=r"norm 2\.0000"):
        pose_to_array(bad, "w")
    ros_like = SimpleNamespace(header=SimpleNamespace(frame_id="w", stamp=SimpleNamespace(sec=1, nanosec=5)),
                               pose=SimpleNamespace(position=SimpleNamespace(x=1.0, y=0.0, z=0.0),
                                                    orientation=SimpleNamespace(x=0.0, y=0.0, z=0.0, w=1.0)))
    assert pose_to_array(ros_like, "w")[0] == 1.0 and stamp_ns(ros_like) == 1_000_000_005


def test_commands_round_trip_through_message_shapes():
    scale, offset = np.array([2.0, 0.5]), np.array([0.0, 1.0])
    values = action_to_command_values(np.array([0.5, -1.0]), scale, offset)
    assert values.tolist() == [1.0, 0.5]
    np.testing.assert_allclose(command_values_to_action(values, scale, offset), [0.5, -1.0])
    cmd = make_command(values, "twist", "velocity", ["linear.x", "angular.z"])
    assert cmd.twist()["angular.z"] == 0.5 and cmd.twist()["linear.y"] == 0.0
    twist = SimpleNamespace(linear=SimpleNamespace(x=1.0, y=0, z=0), angular=SimpleNamespace(x=0, y=0, z=0.5))
    assert command_from_message(twist, "twist", "velocity", ["linear.x", "angular.z"]).tolist() == [1.0, 0.5]
    traj = SimpleNamespace(joint_names=["b", "a"], points=[SimpleNamespace(positions=[2.0, 1.0], velocities=[])])
    assert command_from_message(traj, "joint_trajectory", "position", ["a", "b"]).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="non-finite"):
        make_command(np.array([np.nan, 0.0]), "float64_multi_array", "velocity", ["a", "b"])
    with pytest.raises(ValueError, match="2 values for 3 names"):
        make_command(values, "float64_multi_array", "velocity", ["a", "b", "c"])
