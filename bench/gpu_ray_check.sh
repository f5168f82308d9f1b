#!/usr/bin/env bash
# The Ray pipeline itself on a lent GPU machine, in one call: `bench run` three times on the same
# synthetic pixel shards - today's GPU defaults (one model actor per GPU, two calls at once, each
# on its own CUDA stream), a variant, and the defaults again (A-B-A, as a machine's speed may
# drift) - then `bench verify` of each bundle and `bench compare` of the three.
#   bench/gpu_ray_check.sh OUT_DIR [IMAGES [NAME=FIELDS]]
# IMAGES: default 65,536. NAME=FIELDS: the variant, RunConfig fields as JSON; default
# two-actors='{"concurrency": 2}', two model actors sharing the GPU (Ray's per-batch host work in
# two processes). OUT_DIR gets each run's NAME.result.json, compare.json/.txt and summary.md.
# Where Ray is not installed (the lent machine), it is installed from .whl/ first: run
# bench/gpu_ray_wheels.sh here beforehand and carry .whl. PYTHON picks the interpreter
# (python3); BENCH_DEVICE=cpu gives a CPU dry run of the same steps.
set -euo pipefail
out=${1:-gpu-ray-check-out}
images=${2:-65536}
default_variant='two-actors={"concurrency": 2}'
variant=${3:-$default_variant}
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

run() {  # NAME FIELDS: one bench run into $scratch/NAME, RunConfig FIELDS (JSON) besides the
         # device; its result.json kept as OUT/NAME.result.json
    local name=$1 fields=$2
    echo "== $name ($fields) $(date -u +%H:%M:%S)"
    "$python" - "$scratch/data" "$scratch/$name" "$device" "$fields" <<'EOF'
import json
import sys
from pathlib import Path

from bench.run import runner
from bench.config import RunConfig

data, bundle, device, fields = sys.argv[1:]
runner.run(None, data, RunConfig(device=device, **json.loads(fields)), None, Path(bundle), show_progress=False)
EOF
    "$python" -m bench.cli verify "$scratch/$name"
    cp "$scratch/$name/result.json" "$out/$name.result.json"
}
run defaults '{}'
run "${variant%%=*}" "${variant#*=}"
run defaults-again '{}'

bundles=("$scratch/defaults" "$scratch/${variant%%=*}" "$scratch/defaults-again")
"$python" -m bench.cli compare "${bundles[@]}" --json > "$out/compare.json"
"$python" -m bench.cli compare "${bundles[@]}" | tee "$out/compare.txt"
"$python" -m bench.gpu_ray_check "$out" | tee "$out/summary.md"
