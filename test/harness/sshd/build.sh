#!/usr/bin/env bash
# Build the remote-engine image the remote-engine tests use, without a
# registry: a minimal Debian bookworm root from Debian's packages with
# docker.io (dockerd, containerd, runc, the docker CLI) and openssh-server,
# imported as an image. Each test engine is one container of it: sshd in
# front, its own dockerd behind, reached by jackin through `ssh`. It takes
# a few minutes once; the engine keeps the tag, so later runs on the same
# machine reuse it. Usage: build.sh TAG
set -euo pipefail
tag="${1:?usage: build.sh TAG}"

if docker image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi
root="$(mktemp -d /tmp/jackin-sshd-root.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "remote-engine image: debootstrap into $root (a few minutes)" >&2
debootstrap --variant=minbase \
  --include=docker.io,iptables,ca-certificates,procps,openssh-server,git \
  bookworm "$root" >"$root.log" 2>&1 || { tail -30 "$root.log" >&2; exit 1; }
rm -f "$root.log"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale
# Host keys are made when a container starts (entrypoint), never baked in.
rm -f "$root"/etc/ssh/ssh_host_*
cat >"$root/usr/local/bin/remote-engine" <<'SH'
#!/bin/sh
# remote-engine: the test engine's entrypoint. /keys (bind-mounted) holds
# authorized_keys and the host key pair the test wrote; sshd serves on 22,
# dockerd on its own socket.
set -e
mkdir -p /run/sshd /root/.ssh
chmod 700 /root/.ssh
cp /keys/authorized_keys /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
cp /keys/ssh_host_ed25519_key /keys/ssh_host_ed25519_key.pub /etc/ssh/
chmod 600 /etc/ssh/ssh_host_ed25519_key
dockerd --storage-driver=vfs >/var/log/dockerd.log 2>&1 &
exec /usr/sbin/sshd -D -e -o HostKey=/etc/ssh/ssh_host_ed25519_key \
  -o PasswordAuthentication=no -o PermitRootLogin=prohibit-password
SH
chmod 755 "$root/usr/local/bin/remote-engine"
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'CMD ["/usr/local/bin/remote-engine"]' - "$tag" >/dev/null
echo "remote-engine image: built $tag" >&2
