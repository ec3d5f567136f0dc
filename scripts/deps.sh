# Sourced by the scripts: installs the Debian 12 packages hitbox needs for building, testing and the
# demo, asking apt only for what is missing (run as root).
hitbox_packages=(g++ meson ninja-build pkg-config cmake python3 libboost-dev libhiredis-dev libzstd-dev zlib1g-dev
  libcereal-dev libexpected-dev catch2 libbenchmark-dev redis-server redis-tools libssl-dev openssl)

install_deps() {
  local missing=() p
  for p in "${hitbox_packages[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
