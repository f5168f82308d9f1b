#!/usr/bin/env bash
# The prepared one-call GPU check (docs/performance.md, "GPU"): on a machine with torch,
# torchvision, pyarrow and nvidia-ml-py but no Ray, runs bench.gpu_check's variants one after
# another on the same synthetic data, each under its own time limit, and prints their table;
# exits 1 if any check failed (the others still run and are tabled).
#   bench/gpu_check.sh [OUT_DIR [NAME...]]   # OUT_DIR/summary.md and OUT_DIR/runs/NAME.json;
#                                           # NAMEs: run only those checks (names below)
# PYTHON picks the interpreter (python3); GPU_CHECK_ARGS is added to every run (a CPU dry run:
# GPU_CHECK_ARGS="--device cpu --images 64 --min-seconds 0.2 --precision fp32").
set -uo pipefail
out=${1:-gpu-check-out}
shift $(( $# > 0 ? 1 : 0 ))
only=" $* "
python=${PYTHON:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$out/runs"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

check() {  # NAME ARGS...: one bench.gpu_check run, its JSON kept as runs/NAME.json
    local name=$1; shift
    [ "$only" = "  " ] || [[ "$only" == *" $name "* ]] || return 0
    echo "== $name ($*) $(date -u +%H:%M:%S)"
    timeout "${STEP_TIMEOUT_S:-240}" "$python" -m bench.gpu_check --scratch "$scratch" --out "$out/runs/$name.json" \
        "$@" ${GPU_CHECK_ARGS:-} \
        > /dev/null 2> "$scratch/$name.stderr"
    local rc=$?
    [ "$rc" = 0 ] || { echo "   $name failed (rc $rc):"; tail -n 8 "$scratch/$name.stderr"; failed=$((failed + 1)); }
}
failed=0

date -u
nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,clocks.max.sm --format=csv || true
"$python" -c 'import sys, torch, torchvision; print(sys.version.split()[0], torch.__version__, torchvision.__version__, torch.version.cuda)'
check fast-fp16 --passes 4                                   # the default pipeline at its GPU defaults
check fast-fp16-pixels --format pixels --passes 8            # the same pixels, stored for fast reading
check fast-fp16-pixels-2calls --format pixels --passes 8 --calls-at-once 2  # a copy on one stream overlaps a forward on another
check seed-fp32 --pipeline seed                              # the reference pipeline, for the ratio
check fast-fp16-pixels-compiled --format pixels --passes 8 --compile  # torch.compile: kept only if it pays
check fast-fp16-pixels-compiled-2calls --format pixels --passes 8 --compile --calls-at-once 2
check fast-bf16-pixels --format pixels --passes 8 --precision bf16
check fast-fp16-pixels-b512 --format pixels --passes 8 --batch-size 512
check fast-fp16-pixels-b512-2calls --format pixels --passes 8 --batch-size 512 --calls-at-once 2
check fast-fp16-jpeg --format jpeg --passes 2                # JPEG decoded on the CPU, by loader processes (as Ray's tasks)
check fast-fp16-jpeg-threads --format jpeg --passes 2 --loader threads  # ... by threads, as in run N
check fast-fp16-jpeg-device-decode --format jpeg --passes 4 --decode-on-device  # decoded by nvJPEG, resized on the GPU
check fast-fp16-jpeg-device-decode-2calls --format jpeg --passes 4 --decode-on-device --calls-at-once 2
"$python" -m bench.gpu_check --summarise "$out/runs" | tee "$out/summary.md"
[ "$failed" = 0 ] || { echo "$failed check(s) failed: their errors are above" >&2; exit 1; }
