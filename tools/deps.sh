#!/usr/bin/env bash
# Installs what ringmq needs to build and test, from Debian's packages, if anything is missing.
# Runs apt-get only when a package is absent (as root, or through sudo when available).
set -euo pipefail
PKGS=(build-essential cmake pkg-config clang liburing-dev libyaml-dev libcurl4-openssl-dev
      libcjson-dev mosquitto mosquitto-clients python3 python3-paho-mqtt openssl gnuplot-nox)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
