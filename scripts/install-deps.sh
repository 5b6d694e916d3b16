#!/usr/bin/env bash
# Install the Debian packages r8s and its tests need. Idempotent.
set -euo pipefail
PKGS=(etcd-server etcd-client containerd runc containernetworking-plugins protobuf-compiler
      busybox-static nftables iptables conntrack iproute2 sqlite3 ca-certificates openssl
      docker-registry skopeo apache2-utils python3 python3-venv)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
# The official Kubernetes Python client, for crates/r8s/tests/python_client.rs.
VENV=/opt/r8s-test-venv
if ! "$VENV/bin/python" -c 'import kubernetes' >/dev/null 2>&1; then
  rm -rf "$VENV"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q kubernetes
fi
