"""Round-trip latency and control-loop jitter of ``robo-reward deploy`` over real ROS 2, on this machine.

Setup: the fake robot (7-joint JointState at 100 Hz, 84x84 bgr8 camera at 30 Hz) and ``deploy`` (SB3 PPO
MultiInputPolicy with a CNN over the 84x84 image, the demo learned reward published every tick) at 50 Hz, as
separate processes in a loopback-only network namespace: ROS 2 (Fast DDS, rclpy Kilted wheels) and optionally
ROS 1 (rospy, TCPROS).

* round trip: from the tick's start (the control thread waking up, before the observation snapshot) to the command
  arriving in the fake robot's subscription callback, per tick;
* jitter: how late each tick starts against its schedule (t0 + k * period), and the spread of tick intervals.

Both clocks are CLOCK_MONOTONIC of the same machine, so times compare across processes.

    python benchmarks/ros_latency/ros_latency.py --seconds 60 --runs 3 --middleware ros2 ros1
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]


def one_run(seed: int, seconds: float, rate: float, work: Path, middleware: str) -> dict:
    from robo_reward.hardware.demo import make_demo_run
    from robo_reward.hardware.profile import load_profile
    from robo_reward.hardware.testing import loopback_command

    data = yaml.safe_load((ROOT / "configs/robots/fake_arm7.yaml").read_text())
    data["control_rate_hz"] = rate
    data["max_age_periods"] = 5  # the benchmark measures timing; a watchdog stop would end the measurement
    work.mkdir(parents=True, exist_ok=True)
    (work / "robot.yaml").write_text(yaml.safe_dump(data))
    make_demo_run(work / "run", load_profile(work / "robot.yaml"), seed=seed)
    load_before = os.getloadavg()
    cmd = loopback_command([sys.executable, "-m", "robo_reward.hardware.testing", "deploy", str(work / "run"), "--robot",
                            str(work / "robot.yaml"), "--out", str(work / "out"),
                            "--timeline", json.dumps([[seconds, "control:resume"]]),
                            "--robot-args", f"--rate 100 --camera-rate 30 --seed {seed}",
                            "--middleware", middleware])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 300)
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout + proc.stderr)
    load_after = os.getloadavg()
    log = [json.loads(line) for line in (work / "out/deploy.jsonl").read_text().splitlines()]
    robot = np.load(work / "out/robot.npz")
    sent = [(r, np.asarray(c)) for r in log for c in r["published"]]
    rx_time, rx_values = robot["cmd_time"], robot["cmd_values"]
    if len(rx_time) != len(sent) + 1 or not np.array_equal(rx_values[:-1], np.array([c for _, c in sent])):
        raise RuntimeError(f"commands sent ({len(sent)}) and received ({len(rx_time)}) do not match one to one")
    running = [(i, r) for i, (r, _) in enumerate(sent) if r["status"] == "running"]
    round_trip = np.array([rx_time[i] - r["t_wake"] for i, r in running]) * 1e3
    wire = np.array([rx_time[i] - r["t_sent"] for i, r in running]) * 1e3
    compute = np.array([r["t_sent"] - r["t_wake"] for _, r in running]) * 1e3
    lateness = np.array([r["t_wake"] - r["t"] for r in log]) * 1e3
    intervals = np.diff([r["t_wake"] for r in log]) * 1e3
    estops = sum(r["status"] == "estop" for r in log)
    ticks = np.array([r["tick"] for r in log])
    return {
        "middleware": middleware, "seed": seed, "ticks": len(log), "skipped_ticks": int(ticks[-1] - ticks[0] + 1 - len(ticks)),
        "estop_ticks": estops,
        "round_trip_median_ms": np.median(round_trip), "round_trip_p99_ms": np.percentile(round_trip, 99),
        "round_trip_max_ms": round_trip.max(),
        "publish_to_receive_median_ms": np.median(wire), "publish_to_receive_p99_ms": np.percentile(wire, 99),
        "tick_compute_median_ms": np.median(compute), "tick_compute_p99_ms": np.percentile(compute, 99),
        "lateness_median_ms": np.median(lateness), "lateness_p99_ms": np.percentile(lateness, 99),
        "lateness_max_ms": lateness.max(), "interval_std_ms": intervals.std(),
        "interval_p1_ms": np.percentile(intervals, 1), "interval_p99_ms": np.percentile(intervals, 99),
        "loadavg_1min_before": load_before[0], "loadavg_1min_after": load_after[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--middleware", nargs="+", default=["ros2"], choices=["ros2", "ros1"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/ros_latency"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/ros_latency/ros_latency")
    args = parser.parse_args()
    from robo_reward.hardware.testing import ros_unavailable_reason

    for middleware in args.middleware:
        reason = ros_unavailable_reason(middleware)
        if reason:
            raise SystemExit(f"cannot run {middleware}: {reason}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in range(args.runs):  # middlewares interleaved, so both see the same background load
        for middleware in args.middleware:
            row = one_run(seed, args.seconds, args.rate, args.work / f"{middleware}_seed{seed}", middleware)
            rows.append({k: round(float(v), 3) if isinstance(v, float | np.floating) else v for k, v in row.items()})
            with (args.out.with_suffix(".csv")).open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
            write_markdown(rows, args)
            print(json.dumps(rows[-1]), flush=True)


def write_markdown(rows: list[dict], args: argparse.Namespace) -> None:
    cols = ["middleware", "seed", "ticks", "skipped_ticks", "round_trip_median_ms", "round_trip_p99_ms", "round_trip_max_ms",
            "publish_to_receive_median_ms", "tick_compute_median_ms", "lateness_median_ms", "lateness_p99_ms",
            "lateness_max_ms", "interval_std_ms", "loadavg_1min_before", "loadavg_1min_after"]
    lines = [
        "# ROS bridge: round-trip latency and control-loop jitter",
        "",
        f"Written by `benchmarks/ros_latency.py --seconds {args.seconds:g} --runs {args.runs} --rate {args.rate:g} "
        f"--middleware {' '.join(args.middleware)}` on {time.strftime('%Y-%m-%d %H:%M')}; {os.cpu_count()} CPU "
        "cores, no GPU, shared with other jobs (the load averages are in the table); Python 3.11; ros2 = "
        "ros-rclpy 9.1.2 (Kilted wheels) with rmw_fastrtps_cpp; ros1 = Debian's rospy 1.15.15 (TCPROS, "
        "roscore in the namespace); every process in a loopback-only network namespace.",
        f"Control loop at {args.rate:g} Hz; fake robot: 7-joint JointState at 100 Hz, 84x84 bgr8 Image "
        "(row-padded) at 30 Hz; policy: SB3 PPO MultiInputPolicy (NatureCNN on the image + MLP), torch 1 thread; "
        "learned reward (demo MLP over joints and a 12x12 thumbnail) computed and published every tick after "
        "the command. Round trip = tick start (before the snapshot) to the command arriving in the robot's "
        "callback. Lateness = tick start minus its schedule. publish_to_receive starts when publish() has returned, "
        "so it can be slightly negative where publish writes synchronously (ROS 1).",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    (args.out.with_suffix(".md")).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
