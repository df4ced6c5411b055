#!/usr/bin/env bash
# Build the Docker-in-Docker image the private-daemon tests use, without a
# registry: a minimal Debian bookworm root from Debian's packages with
# docker.io (dockerd, containerd, runc and the docker CLI), imported as an
# image. It takes a few minutes once; the engine keeps the tag, so later runs
# on the same machine reuse it. Usage: build.sh TAG
set -euo pipefail
tag="${1:?usage: build.sh TAG}"

if docker image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "dind image: installing debootstrap" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
root="$(mktemp -d /tmp/jackin-dind-root.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "dind image: debootstrap into $root (a few minutes)" >&2
debootstrap --variant=minbase --include=docker.io,iptables,ca-certificates,procps \
  bookworm "$root" >"$root.log" 2>&1 || { tail -30 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# Trim what a daemon never reads.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'CMD ["dockerd"]' - "$tag" >/dev/null
echo "dind image: built $tag" >&2
