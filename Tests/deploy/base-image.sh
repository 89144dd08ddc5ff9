#!/bin/bash
# Makes the base image deploy/Containerfile names (docker.io/library/debian:bookworm-slim)
# available to podman without a registry: a minbase debootstrap of bookworm,
# imported under that tag. Does nothing when the image is already there.
# Usage: base-image.sh WORKDIR   (needs root, debootstrap, podman, CONTAINERS_CONF set)
set -euo pipefail
tag=docker.io/library/debian:bookworm-slim
work=${1:?usage: base-image.sh WORKDIR}
if podman image exists "$tag"; then
    exit 0
fi
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
rootfs="$work/bookworm-rootfs"
if [ ! -x "$rootfs/bin/bash" ]; then
    rm -rf "$rootfs"
    mkdir -p "$work"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { echo "base-image: debootstrap failed, see $work/debootstrap.log" >&2; exit 1; }
fi
# Keep images small: no apt lists or caches from the bootstrap.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$tag" >/dev/null
echo "base-image: imported $tag from a debootstrap of bookworm"
