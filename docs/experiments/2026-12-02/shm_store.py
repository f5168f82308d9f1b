"""Where Ray's object store should live in a container with a small /dev/shm: `bench run mini`
in bench:cpu under several --shm-size values and object-store choices, alternating, each a
fresh container. Prints one line per run and a summary (img/s from each bundle).

    python3 docs/experiments/2026-12-02/shm_store.py ROUNDS   # needs bench:cpu built

Run on 2026-12-02 against the code of b330a8d, whose `bench.runner.local_object_store_bytes`
capped the store to 90% of /dev/shm (the crash on Docker's default); the kit's sizing is replaced
by a one-line patch inside the container, so the same image runs every arm:
- disk-64m:   Docker's default 64 MB /dev/shm; Ray's own default store (30% of RAM) as a file
              under /tmp, Ray's fallback when /dev/shm is too small.
- shm-1g:     --shm-size=1g, the store capped to 90% of it, in /dev/shm.
- disk-1g:    --shm-size=1g, Ray's default store (bigger than /dev/shm), a file under /tmp.
- shm-8g:     --shm-size=8g, Ray's default store (30% of RAM), in /dev/shm.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
ARMS = {
    "disk-64m": ("64m", "None"),
    "shm-1g": ("1g", "int(0.9 * __import__('shutil').disk_usage('/dev/shm').free)"),
    "disk-1g": ("1g", "None"),
    "shm-8g": ("8g", "None"),
}
PATCH = ("import sys, bench.runner as r; r.local_object_store_bytes = lambda: {store}; "
         "sys.argv = ['bench', 'run', 'mini', '-q', '--out', '/results/{name}']; "
         "from bench.cli import main; main()")


def run(arm: str, index: int, data: Path, results: Path) -> float:
    shm, store = ARMS[arm]
    name = f"{arm}-{index}"
    proc = subprocess.run(
        ["docker", "run", "--rm", f"--shm-size={shm}", "--user", f"{os.getuid()}:{os.getgid()}", "-e", "HOME=/tmp",
         "-v", f"{data}:/data", "-v", f"{results}:/results", "-v", f"{REPO / 'bench'}:/opt/bench/bench:ro",
         "--entrypoint", "python3", "bench:cpu", "-c", PATCH.format(store=store, name=name)],
        capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads((results / name / "result.json").read_text())["throughput_img_s"]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    scratch = Path(tempfile.mkdtemp(prefix="shm-store-"))
    data, results = scratch / "data", scratch / "results"
    data.mkdir()
    results.mkdir()
    rates: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for index in range(rounds):
        order = list(ARMS) if index % 2 == 0 else list(reversed(ARMS))
        for arm in order:
            rate = run(arm, index, data, results)
            rates[arm].append(rate)
            print(f"round {index} {arm}: {rate:.1f} img/s", flush=True)
    for arm, values in rates.items():
        print(f"{arm}: mean {statistics.fmean(values):.1f} img/s ({', '.join(f'{v:.1f}' for v in values)})")


if __name__ == "__main__":
    main()
