#!/usr/bin/env bash
# Wheels for `bench perf --suite gpu`'s Ray cases, fetched here (where PyPI is reachable) for a
# lent GPU machine (Python 3.12, x86-64, no network, no Ray):
#   bench/measure/gpu_wheels.sh [DEST]    # default: .whl/ in the repo (git-ignored: carry it)
# Ray and jsonschema's chain (Ray needs it; that machine lacks it), at the versions and hashes of
# requirements/lock.txt. Ray's wheel is larger than what one device call carries, so it is
# repacked without its Java jar (ray/jars/), which a Python driver never loads; the removed
# files' lines leave its RECORD, so pip installs it as it is.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
dest=${1:-$repo/.whl}
python=${PYTHON:-python3}
lock="$repo/requirements/lock.txt"
pins=()
for name in ray jsonschema jsonschema-specifications referencing rpds-py; do
    pins+=("$(grep -oE "^$name==[^ ]+" "$lock")") || { echo "$name is not pinned in $lock" >&2; exit 1; }
done
mkdir -p "$dest"
download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$download" "${pins[@]}"
"$python" - "$lock" "$download" "$dest" <<'EOF'
"""Check each wheel's sha256 against the lock, then copy it to DEST, Ray's without ray/jars/."""
import hashlib, shutil, sys, zipfile
from pathlib import Path

lock, download, dest = Path(sys.argv[1]).read_text(), Path(sys.argv[2]), Path(sys.argv[3])
for wheel in sorted(download.glob("*.whl")):
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if f"--hash=sha256:{digest}" not in lock:
        sys.exit(f"{wheel.name}: sha256 {digest} is not in requirements/lock.txt")
    if not wheel.name.startswith("ray-"):
        shutil.copy(wheel, dest / wheel.name)
        continue
    slim = dest / wheel.name  # the same name: pip reads the wheel's tags from it
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if info.filename.startswith("ray/jars/"):
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                data = b"".join(line for line in data.splitlines(keepends=True) if not line.startswith(b"ray/jars/"))
            out.writestr(info, data)
    print(f"{slim.name}: {wheel.stat().st_size / 1e6:.1f} -> {slim.stat().st_size / 1e6:.1f} MB without ray/jars/")
EOF
du -ch "$dest"/*.whl | tail -n 1
