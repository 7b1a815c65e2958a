#!/usr/bin/env bash
# The benchmark: Portcullis against nginx proxy_pass and the upstream directly, in one run.
# Builds the release binary, installs what is missing (redis-server, redis-cli and nginx from the
# OS packages, oha with cargo), then runs bench/bench.py, which starts everything on free
# 127.0.0.1 ports, runs bounded oha loads and prints the table. Arguments go to bench.py
# (`bash bench/run.sh --help`). Takes about 9 minutes with the defaults, after the build.
set -euo pipefail
cd "$(dirname "$0")/.."

install_missing() {
  if command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; then
    return
  fi
  echo "$1 not found: installing $2 from the OS packages" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null \
    || echo "apt-get install $2 reported an error; checking for the binary" >&2
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || { echo "$1 still missing" >&2; exit 1; }
}

install_missing redis-server redis-server
install_missing redis-cli redis-tools
install_missing nginx nginx
install_missing python3 python3
export PATH="$PATH:$HOME/.cargo/bin"
if ! command -v oha >/dev/null 2>&1; then
  echo "oha not found: cargo install oha --locked" >&2
  cargo install oha --locked
fi

cargo build --release --locked --bin portcullis
exec python3 bench/bench.py "$@"
