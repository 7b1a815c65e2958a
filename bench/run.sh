#!/usr/bin/env bash
# The benchmark: Portcullis against nginx proxy_pass and the upstream directly, in one run.
# Builds the release binary, installs what is missing (redis-server, redis-cli and nginx from the
# OS packages, oha with cargo), then runs bench/bench.py, which starts everything on free
# 127.0.0.1 ports, runs bounded oha loads and prints the table. Arguments go to bench.py
# (`bash bench/run.sh --help`). Takes about 9 minutes with the defaults, after the build.
set -euo pipefail
cd "$(dirname "$0")/.."

. tests/install_missing.sh

install_missing redis-server redis-server redis redis
install_missing redis-cli redis-tools redis redis
install_missing nginx nginx nginx nginx
install_missing python3 python3 python3 python3
export PATH="$PATH:$HOME/.cargo/bin"
if ! command -v oha >/dev/null 2>&1; then
  echo "oha not found: cargo install oha --locked" >&2
  cargo install oha --locked
fi

cargo build --release --locked --bin portcullis
exec python3 bench/bench.py "$@"
