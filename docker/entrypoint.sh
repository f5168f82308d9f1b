#!/bin/sh
# Entrypoint of bench:gpu and bench:cpu. Makes these do what a user expects:
#   docker run bench:cpu mini                 -> bench run mini   (data in /data, bundle in /results)
#   docker run --gpus all bench:gpu 10G       -> bench run 10G on the GPUs
#   docker run bench:gpu --help               -> bench --help
#   docker run bench:cpu verify /results/X    -> any bench command; also data-prep ..., bash
set -eu

asks_for_cpu() {
  prev=""
  for arg in "$@"; do
    if [ "$arg" = "--device=cpu" ] || { [ "$prev" = "--device" ] && [ "$arg" = "cpu" ]; }; then
      return 0
    fi
    prev="$arg"
  done
  return 1
}

# The GPU image never falls back to CPUs quietly: only --device cpu asks for that.
check_gpu() {
  if [ "${BENCH_FLAVOR:-cpu}" != "gpu" ] || asks_for_cpu "$@"; then
    return 0
  fi
  if ! python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "error: this is the GPU image (bench:gpu) and it sees no GPU. Run it with 'docker run --gpus all ...'" \
         "on a host with an NVIDIA driver >= 580 and the NVIDIA container toolkit, or add '--device cpu'" \
         "to run it on CPUs (bench:cpu is the same image for CPU-only nodes)." >&2
    exit 3
  fi
}

# A run started with --user UID:GID (so that its files belong to the host user) has no home of
# its own; Ray and matplotlib write under $HOME.
if ! [ -w "${HOME:-/nonexistent}" ]; then
  HOME=$(mktemp -d /tmp/home.XXXXXX)
  export HOME
fi

gives_data() {
  for arg in "$@"; do
    case "$arg" in --data|--data=*) return 0 ;; esac
  done
  return 1
}

# A host directory that Docker created for a bind mount belongs to root: say so, and the fix,
# before any work (a named size is generated into /data, the bundle goes to /results).
check_writable() {
  dirs="${BENCH_RESULTS_DIR:-/results}"
  gives_data "$@" || dirs="${BENCH_DATA_DIR:-/data} $dirs"
  for dir in $dirs; do
    if [ -d "$dir" ] && ! [ -w "$dir" ]; then
      echo "error: $dir is not writable by this container's user (uid $(id -u)); the host directory mounted" \
           "there belongs to $(stat -c %u:%g "$dir"). Create it yourself and run as yourself:" \
           "mkdir -p data results, then docker run --user \"\$(id -u):\$(id -g)\" -v \"\$PWD/data:/data\"" \
           "-v \"\$PWD/results:/results\" ..." >&2
      exit 2
    fi
  done
}

[ $# -gt 0 ] || set -- mini
case "$1" in
  -h|--help|help)
    exec bench --help ;;
  run)
    check_gpu "$@"
    check_writable "$@"
    exec bench "$@" ;;
  verify|compare|micro|env|image|report|perf|pack|unpack|--version)
    exec bench "$@" ;;
  data-prep)
    shift
    exec data-prep "$@" ;;
  bash|sh|python|python3|ray)
    exec "$@" ;;
  *)
    check_gpu "$@"
    check_writable "$@"
    exec bench run "$@" ;;
esac
