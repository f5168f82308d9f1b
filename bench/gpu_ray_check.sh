#!/usr/bin/env bash
# The Ray pipeline itself on a lent GPU machine, in one call: `bench run` on synthetic pixel
# shards with today's GPU defaults (two calls at once per threaded model actor, each on its own
# CUDA stream), with the previous default (threaded_actors off: one forward pass at a time) and
# with the defaults again (A-B-A, as this machine's speed may drift), then `bench verify` of each
# bundle and `bench compare` of the three.
#   bench/gpu_ray_check.sh OUT_DIR [IMAGES]   # default 65,536 images; OUT_DIR gets each run's
#                                            # result.json, compare.json and the table
# Where Ray is not installed (the lent machine), it is installed from .whl/ first: run
# bench/gpu_ray_wheels.sh here beforehand and carry .whl. PYTHON picks the interpreter
# (python3); BENCH_DEVICE=cpu gives a CPU dry run of the same steps.
set -euo pipefail
out=${1:-gpu-ray-check-out}
images=${2:-65536}
python=${PYTHON:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)
if ! "$python" -c 'import ray' 2>/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/ray-site "$repo"/.whl/*.whl
    export PYTHONPATH=/tmp/ray-site
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$out"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
device=${BENCH_DEVICE:-auto}

date -u
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || true
"$python" -c 'import sys, ray, torch; print(sys.version.split()[0], "ray", ray.__version__, "torch", torch.__version__)'
df -h /dev/shm | tail -n 1

echo "== data: $images synthetic images, pixels format $(date -u +%H:%M:%S)"
"$python" -m data_prep.cli synth --images "$images" --format pixels --out "$scratch/data" -q > /dev/null

run() {  # NAME THREADED: one bench run into $scratch/NAME, its result.json kept as OUT/NAME.result.json
    local name=$1 threaded=$2
    echo "== $name (threaded_actors=$threaded) $(date -u +%H:%M:%S)"
    "$python" - "$scratch/data" "$scratch/$name" "$device" "$threaded" <<'EOF'
import sys
from pathlib import Path

from bench import runner
from bench.config import RunConfig

data, bundle, device, threaded = sys.argv[1:]
config = RunConfig(device=device, threaded_actors={"default": None, "off": False}[threaded])
runner.run(None, data, config, None, Path(bundle), show_progress=False)
EOF
    "$python" -m bench.cli verify "$scratch/$name"
    cp "$scratch/$name/result.json" "$out/$name.result.json"
}
run two-calls default
run one-call off
run two-calls-again default

"$python" -m bench.cli compare "$scratch/two-calls" "$scratch/one-call" "$scratch/two-calls-again" --json > "$out/compare.json"
"$python" -m bench.cli compare "$scratch/two-calls" "$scratch/one-call" "$scratch/two-calls-again" | tee "$out/compare.txt"
"$python" -m bench.gpu_ray_check "$out" | tee "$out/summary.md"
