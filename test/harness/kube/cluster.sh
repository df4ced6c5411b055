#!/usr/bin/env bash
# A single-node Kubernetes cluster on loopback for the Kubernetes backend's
# end-to-end tests, built from Go modules and Debian packages alone (no
# registry, no node image). See ../../../../shared/environment.md's notes and
# README.md ("Kubernetes backend").
#
#   cluster.sh build   build etcd and the Kubernetes binaries into the cache
#                      (only those missing: a second run takes no time)
#   cluster.sh up      build if needed, then start etcd, kube-apiserver,
#                      controller-manager, scheduler, containerd and a kubelet;
#                      writes $STATE/kubeconfig and waits for the node to be Ready
#   cluster.sh down    stop everything `up` started and remove its state
#   cluster.sh env     print KUBECONFIG=... for the running cluster
#   cluster.sh import IMAGE.tar|-   import an OCI/docker-save tar into the node
#   cluster.sh recycle  offer the volumes of deleted claims again (wiped)
#
# Binaries live outside the clone, keyed by version:
#   ${JACKIN_CACHE:-$HOME/.cache/jackin}/kube-$KUBE_VERSION/bin
#   ${JACKIN_CACHE:-$HOME/.cache/jackin}/etcd-$ETCD_VERSION/bin
# State (data, logs, pids, kubeconfig) lives in ${JACKIN_KUBE_STATE:-/tmp/jackin-kube}.
set -euo pipefail

KUBE_VERSION=v1.37.2
KUBE_MODVERSION=v0.37.2
ETCD_VERSION=v3.7.3
CACHE=${JACKIN_CACHE:-$HOME/.cache/jackin}
KBIN=$CACHE/kube-$KUBE_VERSION/bin
EBIN=$CACHE/etcd-$ETCD_VERSION/bin
STATE=${JACKIN_KUBE_STATE:-/tmp/jackin-kube}
# Ports and the node's bridge are the cluster's own, apart from Docker's.
APISERVER_PORT=${JACKIN_KUBE_API_PORT:-16443}
ETCD_PORT=${JACKIN_KUBE_ETCD_PORT:-12379}
ETCD_PEER_PORT=$((ETCD_PORT + 1))
KUBELET_PORT=${JACKIN_KUBE_KUBELET_PORT:-10250}
BRIDGE=jackinkube0
POD_SUBNET=${JACKIN_KUBE_POD_SUBNET:-10.244.77.0/24}
SERVICE_RANGE=10.96.77.0/24
KUBE_TOOLS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

export PATH=/usr/local/go/bin:$PATH
log() { echo "cluster.sh: $*" >&2; }
die() { log "$*"; exit 1; }

need_build() {
  [ -x "$EBIN/etcd" ] || return 0
  local t
  for t in "${KUBE_TOOLS[@]}"; do [ -x "$KBIN/$t" ] || return 0; done
  return 1
}

build_etcd() {
  [ -x "$EBIN/etcd" ] && return 0
  local src=$CACHE/src/etcd-$ETCD_VERSION
  mkdir -p "$src" "$EBIN"
  log "building etcd $ETCD_VERSION (about 80 s cold)"
  local start=$SECONDS
  (
    cd "$src"
    [ -f go.mod ] || go mod init jackin.local/etcdbuild >/dev/null 2>&1
    # go install refuses etcd (replace directives); a scratch module builds it.
    go get go.etcd.io/etcd/server/v3@$ETCD_VERSION go.etcd.io/etcd/api/v3@$ETCD_VERSION \
      go.etcd.io/etcd/client/pkg/v3@$ETCD_VERSION go.etcd.io/etcd/client/v3@$ETCD_VERSION \
      go.etcd.io/etcd/pkg/v3@$ETCD_VERSION >/dev/null
    CGO_ENABLED=0 go build -trimpath -o "$EBIN/etcd.tmp" go.etcd.io/etcd/server/v3
  )
  mv "$EBIN/etcd.tmp" "$EBIN/etcd"
  log "etcd built in $((SECONDS - start)) s"
}

build_kube() {
  local t missing=()
  for t in "${KUBE_TOOLS[@]}"; do [ -x "$KBIN/$t" ] || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local src=$CACHE/src/kube-$KUBE_VERSION
  mkdir -p "$src" "$KBIN"
  log "building ${missing[*]} $KUBE_VERSION (kube-apiserver about 12 min cold, 90 s warm)"
  local start=$SECONDS
  (
    cd "$src"
    if [ ! -f go.mod ]; then
      go mod init jackin.local/kubebuild >/dev/null 2>&1
      go mod edit -require=k8s.io/kubernetes@$KUBE_VERSION
      local kgomod
      kgomod=$(go mod download -json k8s.io/kubernetes@$KUBE_VERSION | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
      [ -f "$kgomod" ] || die "no go.mod for k8s.io/kubernetes@$KUBE_VERSION"
      # k8s.io/kubernetes replaces its staging modules with ./staging paths;
      # the published k8s.io/<name> builds of the same release stand in.
      local m
      for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\) => ./staging/.*#\1#p' "$kgomod"); do
        go mod edit -replace="$m=$m@$KUBE_MODVERSION"
      done
      cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubectl/pkg/cmd"
)
GO
      go mod tidy -e >/dev/null 2>&1 || true
    fi
    local pkgs=() ldv="k8s.io/component-base/version"
    for t in "${missing[@]}"; do
      case $t in
        kubectl) pkgs+=(k8s.io/kubernetes/cmd/kubectl) ;;
        *) pkgs+=(k8s.io/kubernetes/cmd/$t) ;;
      esac
    done
    local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
    mkdir -p "$KBIN/.tmp"
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$KBIN/.tmp/" \
      -ldflags "-s -w -X $ldv.gitVersion=$KUBE_VERSION -X $ldv.gitMajor=1 -X $ldv.gitMinor=$minor -X $ldv.gitTreeState=clean" \
      "${pkgs[@]}"
  )
  for t in "${missing[@]}"; do mv "$KBIN/.tmp/$t" "$KBIN/$t"; done
  rmdir "$KBIN/.tmp" 2>/dev/null || true
  log "${missing[*]} built in $((SECONDS - start)) s"
}

cmd_build() {
  need_build || { log "binaries cached in $KBIN and $EBIN"; return 0; }
  build_etcd
  build_kube
}

ensure_node_packages() {
  local missing=()
  command -v containerd >/dev/null 2>&1 || missing+=(containerd)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null 2>&1 || missing+=(iptables)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]} (Debian: apt-get install -y ${missing[*]})"
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

pid_alive() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

start_bg() { # name, command...
  local name=$1; shift
  if pid_alive "$name"; then return 0; fi
  setsid "$@" >"$STATE/log/$name.log" 2>&1 < /dev/null &
  echo $! >"$STATE/$name.pid"
}

wait_for() { # what, seconds, command...
  local what=$1 secs=$2; shift 2
  local i
  for ((i = 0; i < secs * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "$what did not come up in ${secs}s (logs in $STATE/log)"
}

make_pki() {
  local p=$STATE/pki
  [ -f "$p/admin.crt" ] && return 0
  mkdir -p "$p"
  (
    cd "$p"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -keyout ca.key -out ca.crt -subj "/CN=jackin-kube-ca" 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    cert() { # name, subject, [san]
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      if [ -n "${3:-}" ]; then
        printf 'subjectAltName=%s\n' "$3" >"$1.ext"
        openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out "$1.crt" -extfile "$1.ext" 2>/dev/null
      else
        openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out "$1.crt" 2>/dev/null
      fi
    }
    cert apiserver "/CN=kube-apiserver" "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,IP:127.0.0.1,IP:10.96.77.1"
    cert kubelet "/CN=system:node:localhost/O=system:nodes" "DNS:localhost,IP:127.0.0.1"
    cert admin "/CN=jackin-admin/O=system:masters"
    cert controller-manager "/CN=system:kube-controller-manager"
    cert scheduler "/CN=system:kube-scheduler"
    cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client/O=system:masters"
  )
}

kubeconfig() { # name, cert basename
  cat >"$STATE/$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: jackin-kube
  cluster:
    certificate-authority: $STATE/pki/ca.crt
    server: https://127.0.0.1:$APISERVER_PORT
users:
- name: $2
  user:
    client-certificate: $STATE/pki/$2.crt
    client-key: $STATE/pki/$2.key
contexts:
- name: jackin-kube
  context: {cluster: jackin-kube, user: $2}
current-context: jackin-kube
KC
}

write_containerd_config() {
  mkdir -p "$STATE/containerd/root" "$STATE/containerd/state" "$STATE/cni/net.d"
  cat >"$STATE/containerd/config.toml" <<TOML
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
[grpc]
  address = "$STATE/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "jackin.local/pause:1"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
TOML
  cat >"$STATE/cni/net.d/10-jackin.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "jackin-kube",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_SUBNET"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$STATE/cni/ipam"}},
    {"type": "loopback"}
  ]
}
CNI
}

ctr_() { ctr --address "$STATE/containerd/containerd.sock" -n k8s.io "$@"; }

# The pause image: a static binary that sleeps until signalled, as a
# one-layer image built by the local Docker engine (no registry).
import_pause() {
  ctr_ images ls -q 2>/dev/null | grep -qx 'jackin.local/pause:1' && return 0
  local d; d=$(mktemp -d)
  cat >"$d/main.go" <<'GO'
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
GO
  (cd "$d" && go mod init pause >/dev/null 2>&1 && CGO_ENABLED=0 go build -o pause .)
  printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >"$d/Dockerfile"
  docker build -q -t jackin.local/pause:1 "$d" >/dev/null
  docker save jackin.local/pause:1 -o "$d/pause.tar"
  ctr_ images import "$d/pause.tar" >/dev/null
  rm -rf "$d"
}

cmd_up() {
  cmd_build
  ensure_node_packages
  mkdir -p "$STATE/log" "$STATE/etcd" "$STATE/kubelet" "$STATE/pv"
  local start=$SECONDS
  make_pki
  kubeconfig admin admin
  kubeconfig controller-manager controller-manager
  kubeconfig scheduler scheduler
  kubeconfig kubelet kubelet
  write_containerd_config

  start_bg containerd containerd --config "$STATE/containerd/config.toml"
  start_bg etcd "$EBIN/etcd" --data-dir "$STATE/etcd" --name jackin \
    --listen-client-urls http://127.0.0.1:$ETCD_PORT --advertise-client-urls http://127.0.0.1:$ETCD_PORT \
    --listen-peer-urls http://127.0.0.1:$ETCD_PEER_PORT --initial-advertise-peer-urls http://127.0.0.1:$ETCD_PEER_PORT \
    --initial-cluster jackin=http://127.0.0.1:$ETCD_PEER_PORT
  wait_for etcd 30 curl -sf http://127.0.0.1:$ETCD_PORT/health

  local p=$STATE/pki
  # Privileged Pods are allowed, as on kubeadm's clusters: whether a
  # namespace admits them is its Pod Security level (the e2e tests run
  # jackin's private Docker daemon in one namespace and see it refused in
  # one labelled baseline).
  start_bg kube-apiserver "$KBIN/kube-apiserver" \
    --etcd-servers http://127.0.0.1:$ETCD_PORT \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port $APISERVER_PORT \
    --endpoint-reconciler-type none \
    --service-cluster-ip-range $SERVICE_RANGE \
    --client-ca-file $p/ca.crt --tls-cert-file $p/apiserver.crt --tls-private-key-file $p/apiserver.key \
    --kubelet-client-certificate $p/apiserver-kubelet-client.crt --kubelet-client-key $p/apiserver-kubelet-client.key \
    --kubelet-certificate-authority $p/ca.crt --kubelet-preferred-address-types Hostname \
    --service-account-key-file $p/sa.pub --service-account-signing-key-file $p/sa.key \
    --service-account-issuer https://kubernetes.default.svc \
    --authorization-mode Node,RBAC --allow-privileged=true \
    --enable-admission-plugins NodeRestriction
  wait_for kube-apiserver 90 "$KBIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" get --raw /readyz

  start_bg kube-controller-manager "$KBIN/kube-controller-manager" \
    --kubeconfig "$STATE/controller-manager.kubeconfig" --bind-address 127.0.0.1 --secure-port 0 \
    --service-account-private-key-file $p/sa.key --root-ca-file $p/ca.crt \
    --use-service-account-credentials --controllers '*,-nodeipam' --leader-elect=false
  start_bg kube-scheduler "$KBIN/kube-scheduler" \
    --kubeconfig "$STATE/scheduler.kubeconfig" --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false

  wait_for containerd 30 ctr_ version
  import_pause
  cat >"$STATE/kubelet/config.yaml" <<KY
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
tlsCertFile: $p/kubelet.crt
tlsPrivateKeyFile: $p/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $p/ca.crt}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$STATE/containerd/containerd.sock
podCIDR: $POD_SUBNET
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: ""
localStorageCapacityIsolation: false
cgroupsPerQOS: true
enforceNodeAllocatable: []
KY
  # Docker sets the FORWARD policy to DROP and bridged traffic passes
  # iptables (br_netfilter): let the node's Pods reach each other.
  iptables -C FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null ||
    iptables -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
  start_bg kubelet "$KBIN/kubelet" --config "$STATE/kubelet/config.yaml" \
    --kubeconfig "$STATE/kubelet.kubeconfig" --root-dir "$STATE/kubelet/root" \
    --hostname-override localhost
  local k=("$KBIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig")
  wait_for "node localhost" 90 "${k[@]}" wait --for=condition=Ready node/localhost --timeout=1s
  # No dynamic provisioner: a storage class and a pool of hostPath volumes
  # the claims bind to (each dir under $STATE/pv, on this node only).
  ensure_pvs ${JACKIN_KUBE_PVS:-60}
  cp "$STATE/admin.kubeconfig" "$STATE/kubeconfig"
  log "cluster up in $((SECONDS - start)) s; export KUBECONFIG=$STATE/kubeconfig"
}

ensure_pvs() {
  local n=$1 i k=("$KBIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig")
  {
    cat <<SC
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: jackin-local, annotations: {storageclass.kubernetes.io/is-default-class: "true"}}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
reclaimPolicy: Delete
SC
    for ((i = 0; i < n; i++)); do
      mkdir -p "$STATE/pv/pv$i"; chmod 0777 "$STATE/pv/pv$i"
      cat <<PV
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: jackin-pv-$i, labels: {jackin-test-pv: "1"}}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: jackin-local
  hostPath: {path: $STATE/pv/pv$i, type: DirectoryOrCreate}
PV
    done
  } | "${k[@]}" apply -f - >/dev/null
  # Released volumes (their claim deleted) are wiped and offered again:
  # the recycler would need an image from a registry.
  local pv
  for pv in $("${k[@]}" get pv -l jackin-test-pv=1 -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name}{"\n"}{end}'); do
    i=${pv#jackin-pv-}
    find "$STATE/pv/pv$i" -mindepth 1 -delete 2>/dev/null || true
    "${k[@]}" patch pv "$pv" --type json -p '[{"op":"remove","path":"/spec/claimRef"}]' >/dev/null
  done
}

cmd_down() {
  local n
  for n in kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do
    if pid_alive "$n"; then kill "$(cat "$STATE/$n.pid")" 2>/dev/null || true; fi
  done
  # Pods' containers go with containerd's shims: stop them through ctr first.
  if pid_alive containerd; then
    local t
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
    sleep 1
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$t" >/dev/null 2>&1 || true; done
    kill "$(cat "$STATE/containerd.pid")" 2>/dev/null || true
  fi
  sleep 1
  for n in kubelet kube-scheduler kube-controller-manager kube-apiserver etcd containerd; do
    if pid_alive "$n"; then kill -9 "$(cat "$STATE/$n.pid")" 2>/dev/null || true; fi
  done
  # Leftover shims of this containerd (identified by its own socket path).
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $STATE/containerd/containerd.sock" 2>/dev/null); do
    kill -9 "$pid" 2>/dev/null || true
  done
  grep " $STATE/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -rf "$STATE"
  log "cluster down"
}

cmd_import() {
  local f=${1:-}
  if [ "$f" = - ]; then
    f=$(mktemp); cat >"$f"
    ctr_ images import "$f" >/dev/null || { rm -f "$f"; die "ctr images import failed"; }
    rm -f "$f"
    return 0
  fi
  [ -f "$f" ] || die "usage: cluster.sh import IMAGE.tar|-"
  ctr_ images import "$f" >/dev/null
}

case ${1:-} in
  build) cmd_build ;;
  up) cmd_up ;;
  down) cmd_down ;;
  env) echo "KUBECONFIG=$STATE/kubeconfig" ;;
  import) shift; cmd_import "$@" ;;
  recycle) ensure_pvs "${JACKIN_KUBE_PVS:-60}" ;;
  *) die "usage: cluster.sh build|up|down|env|recycle|import IMAGE.tar|-" ;;
esac
