"""Where a `bench run`'s CPU time goes, process by process.

    python cpu_by_process.py OUT_JSON -- bench run --data DIR [options]

Runs the command, samples every process's CPU times (psutil) every 0.25 s, and attributes each
process's CPU seconds to the Ray titles it showed (its `ray::...` process title: the actor or
task it ran). Prints core-seconds per process over the whole run and over the steady state
(from the model actor's first busy sample to 5 s before its last), and the machine's idle time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict

import psutil


def title(proc: psutil.Process) -> str:
    try:
        cmd = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return "?"
    if not cmd:
        return proc.name()
    if cmd[0].startswith("ray::"):
        return cmd[0].split(" ")[0]
    for part in cmd[:4]:
        for key in ("raylet", "gcs_server", "log_monitor", "dashboard", "monitor.py", "bench", "runtime_env"):
            if key in part:
                return key
    return proc.name()


def main() -> None:
    out_json, command = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
    me = psutil.Process()
    samples = []  # (t, idle, {pid: cpu_s})
    titles: dict[int, set[str]] = defaultdict(set)
    known: dict[int, psutil.Process] = {}
    child = subprocess.Popen(command)
    t0 = time.time()
    while child.poll() is None:
        now = time.time() - t0
        idle = psutil.cpu_times().idle
        cpu = {}
        for proc in psutil.process_iter():
            if proc.pid == me.pid:
                continue
            proc = known.setdefault(proc.pid, proc)
            try:
                times = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            cpu[proc.pid] = times.user + times.system
            name = title(proc)
            if name != "ray::IDLE":
                titles[proc.pid].add(name)
        samples.append((now, idle, cpu))
        time.sleep(0.25)
    end = time.time() - t0

    def cpu_at(pid: int, i: int) -> float:
        """The pid's CPU seconds at sample i: its last value seen by then (0 before it started)."""
        for k in range(i, -1, -1):
            if pid in samples[k][2]:
                return samples[k][2][pid]
        return 0.0

    def per_pid(first: int, last: int) -> dict[int, float]:
        return {pid: cpu_at(pid, last) - cpu_at(pid, first) for pid in titles}

    model_pids = {pid for pid, names in titles.items() if any("Predictor" in n for n in names)}

    def model_busy(i: int) -> bool:
        spent = sum(samples[i][2].get(p, 0) - samples[i - 1][2].get(p, 0) for p in model_pids)
        return spent > 0.5 * (samples[i][0] - samples[i - 1][0])

    busy = [i for i in range(1, len(samples)) if model_busy(i)]
    steady_from = busy[0] if busy else 0
    steady_to = max([steady_from] + [i for i in range(len(samples)) if busy and samples[i][0] <= samples[busy[-1]][0] - 5])
    report = {"command": command, "wall_s": end, "windows": {},
              "pids": {pid: {"titles": sorted(names), "core_s": cpu_at(pid, len(samples) - 1)} for pid, names in titles.items()}}
    for name, (i, j) in {"whole": (0, len(samples) - 1), "steady": (steady_from, steady_to)}.items():
        seconds = samples[j][0] - samples[i][0]
        groups: dict[str, float] = defaultdict(float)
        for pid, spent in per_pid(i, j).items():
            groups[" | ".join(sorted(titles[pid])) or "ray::IDLE"] += spent
        idle = samples[j][1] - samples[i][1]
        report["windows"][name] = {"from_s": samples[i][0], "seconds": seconds, "idle_core_s": idle,
                                   "core_s": dict(sorted(groups.items(), key=lambda kv: -kv[1]))}
        print(f"\n{name}: {samples[i][0]:.1f}-{samples[j][0]:.1f} s ({seconds:.1f} s, "
              f"{seconds * psutil.cpu_count():.1f} core-s), idle {idle:.1f} core-s")
        for group, spent in report["windows"][name]["core_s"].items():
            if spent >= 0.05:
                print(f"  {spent:8.2f}  {spent / seconds:5.2f} cores  {group[:110]}")
    with open(out_json, "w") as f:
        json.dump(report, f, indent=1)
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
