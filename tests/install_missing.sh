# Sourced by tests/run.sh and bench/run.sh: install_missing, which installs a command from the OS
# packages when it is not on PATH (nor in /usr/sbin, where Debian puts nginx).
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
