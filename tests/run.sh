#!/usr/bin/env bash
# Runs the whole test suite. The integration tests start their own redis-server (single servers,
# Redis Clusters and Sentinel setups) and nginx on free loopback ports, so those binaries must be
# there: install them from the OS packages when missing.
# The Kubernetes manifests are validated with the kubernetes-validate Python package.
set -euo pipefail
cd "$(dirname "$0")/.."

# install_missing COMMAND APT_PACKAGE DNF_PACKAGE BREW_PACKAGE
install_missing() {
  # Debian puts nginx in /usr/sbin, which is not on every user's PATH.
  if command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; then
    return
  fi
  echo "$1 not found: installing it from the OS packages" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  if command -v apt-get >/dev/null 2>&1; then
    $sudo apt-get update -qq
    # A package's post-install may fail to start its system service (no init in a container);
    # the tests start their own instances, so only the binary matters, checked below.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null \
      || echo "apt-get install $2 reported an error; checking for the binary" >&2
  elif command -v dnf >/dev/null 2>&1; then
    $sudo dnf install -y "$3"
  elif command -v brew >/dev/null 2>&1; then
    brew install "$4"
  else
    echo "cannot install $1 on this system: install it and run this again" >&2
    exit 1
  fi
  if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$1" ]; then
    echo "$1 is still missing after installing $2" >&2
    exit 1
  fi
}

install_missing redis-server redis-server redis redis
# redis-cli forms the test Redis Clusters (`redis-cli --cluster create`).
install_missing redis-cli redis-tools redis redis
install_missing nginx nginx nginx nginx
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
