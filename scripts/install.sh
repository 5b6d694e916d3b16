#!/usr/bin/env bash
# Bring r8s up on this machine: install packages, build, install the binary, start
# `r8s server` in the background, and wait until `kubectl get ns` works.
#   sudo bash scripts/install.sh            # data in /var/lib/r8s, port 6443
# Environment: R8S_DATA_DIR, R8S_PORT, R8S_ARGS (extra server flags).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${R8S_DATA_DIR:-/var/lib/r8s}
PORT=${R8S_PORT:-6443}

bash scripts/install-deps.sh
cargo build --release -p r8s
install -m 0755 target/release/r8s /usr/local/bin/r8s

if pgrep -x r8s >/dev/null; then
  echo "r8s is already running (pid $(pgrep -x r8s | head -1)); stop it first to restart"
else
  mkdir -p "$DATA_DIR"
  # shellcheck disable=SC2086
  nohup /usr/local/bin/r8s server --data-dir "$DATA_DIR" --https-listen-port "$PORT" ${R8S_ARGS:-} \
    >"$DATA_DIR/r8s.log" 2>&1 &
  echo "started r8s server (log: $DATA_DIR/r8s.log)"
fi

export KUBECONFIG="$DATA_DIR/kubeconfig.yaml"
for _ in $(seq 1 100); do
  if [ -f "$KUBECONFIG" ] && kubectl get --raw /readyz >/dev/null 2>&1; then
    kubectl get namespaces
    echo
    echo "r8s is up. Use it with:  export KUBECONFIG=$KUBECONFIG"
    exit 0
  fi
  sleep 0.3
done
echo "r8s did not become ready; see $DATA_DIR/r8s.log" >&2
exit 1
