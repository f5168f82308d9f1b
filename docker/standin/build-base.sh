#!/usr/bin/env bash
# Build a stand-in for the images' base (Debian bookworm + Python 3.11) from Debian packages,
# for machines that cannot pull from a registry (this kit's CI). The real builds use the
# pinned BASE_IMAGE defaults in Dockerfile.gpu / Dockerfile.cpu instead.
#
# The image is tagged by the hash of this recipe, so it is built once per machine and reused.
# Prints the tag on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
packages=python3,python3-venv,ca-certificates
recipe_hash=$( (cat "$0"; echo "$suite $packages"; sha256sum /etc/ssl/certs/ca-certificates.crt) | sha256sum | cut -c1-12)
tag="raybench-base:standin-${recipe_hash}"

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
echo "debootstrap $suite into $root (once per recipe) ..." >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >&2
# Trust the same CAs as the host (needed behind this machine's TLS setup for pip).
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  - "$tag" >&2
echo "$tag"
