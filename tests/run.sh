#!/usr/bin/env bash
# Runs the whole test suite. The integration tests start their own redis-server (single servers,
# Redis Clusters and Sentinel setups) and nginx on free loopback ports and run Apache's htpasswd,
# so those binaries must be there: install them from the OS packages when missing.
# The Kubernetes manifests are validated with the kubernetes-validate Python package.
set -euo pipefail
cd "$(dirname "$0")/.."

. tests/install_missing.sh

install_missing redis-server redis-server redis redis
# redis-cli forms the test Redis Clusters (`redis-cli --cluster create`).
install_missing redis-cli redis-tools redis redis
install_missing nginx nginx nginx nginx
# Apache's htpasswd writes the bcrypt users files the users_file tests log in with.
install_missing htpasswd apache2-utils httpd-tools httpd
install_missing python3 python3 python3 python3
# The Kubernetes manifests are checked against the schemas this package bundles (no network).
KUBERNETES_VALIDATE=kubernetes-validate==1.37.0
if ! python3 -c "import kubernetes_validate" >/dev/null 2>&1; then
  echo "kubernetes-validate not found: installing it with pip" >&2
  if ! python3 -m pip --version >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-pip >/dev/null
  fi
  python3 -m pip install --quiet "$KUBERNETES_VALIDATE" \
    || python3 -m pip install --quiet --break-system-packages "$KUBERNETES_VALIDATE"
fi
redis-server --version
PATH="$PATH:/usr/sbin" nginx -v

cargo test --locked "$@"
