#!/usr/bin/env bash
# Installs what ringmq needs to build and test, from Debian's packages, if anything is missing.
# Runs apt-get only when a package is absent (as root, or through sudo when available).
#
# It also makes sure apt can fetch Debian's wolfssl *source* package: the default build compiles
# that source with AES-NI and assembly (tools/wolfssl/build.sh, docs/wolfssl.md), so a deb-src
# entry is added for the same Debian archive URIs and suites the machine already uses, in
# /etc/apt/sources.list.d/ringmq-deb-src.{sources,list}. Both apt formats are read: deb822
# (*.sources, Debian 12's default) and one-line (sources.list, *.list).
set -euo pipefail
PKGS=(build-essential cmake pkg-config clang liburing-dev libyaml-dev libcurl4-openssl-dev
      libcjson-dev mosquitto mosquitto-clients python3 python3-paho-mqtt openssl gnuplot-nox
      dpkg-dev autoconf automake libtool libwolfssl-dev libssl-dev python3-cryptography
      python3-jwt libmicrohttpd-dev)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
updated=0
apt_update() {
  ((updated)) && return 0
  $SUDO apt-get update -qq
  updated=1
}

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- deb-src for Debian's own archive -------------------------------------------------------
# (no grep -q on a pipe: under pipefail, apt-cache's SIGPIPE would read as "not found")
have_wolfssl_src() { apt-cache showsrc --only-source wolfssl 2>/dev/null | grep -c '^Package: wolfssl$' >/dev/null; }

# A source entry belongs to Debian's archive when its URI is on debian.org (deb, security,
# snapshot) or is a mirror path ending in /debian or /debian-security. Third-party repositories
# are skipped: most serve no Sources index, and a 404 there would fail apt-get update.
DEBIAN_URI_RE='(debian\.org/|/debian(-security)?/?$)'

# deb822 stanzas with Types: deb -> the same stanza with Types: deb-src (comments dropped).
deb822_to_src() { # files...
  awk -v re="$DEBIAN_URI_RE" '
    BEGIN { RS = ""; FS = "\n" }
    {
      types = ""; uris = ""; enabled = 1; out = ""
      for (i = 1; i <= NF; i++) {
        line = $i
        if (line ~ /^#/) continue
        key = tolower(line); sub(/:.*/, "", key)
        val = line; sub(/^[^:]*:[ \t]*/, "", val)
        if (key == "types") { types = " " val " "; continue }
        if (key == "uris") uris = val
        if (key == "enabled" && tolower(val) ~ /^(no|false)/) enabled = 0
        out = out line "\n"
      }
      if (!enabled || types !~ /[ \t]deb[ \t]/ || types ~ /[ \t]deb-src[ \t]/) next
      n = split(uris, u, /[ \t]+/); ok = 0
      for (j = 1; j <= n; j++) if (u[j] ~ re) ok = 1
      if (ok) printf "Types: deb-src\n%s\n", out
    }' "$@"
}

# One-line "deb [opts] uri suite components" -> "deb-src [opts] uri suite components".
list_to_src() { # files...
  awk -v re="$DEBIAN_URI_RE" '
    $1 == "deb" {
      uri = ""
      for (i = 2; i <= NF; i++) { if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; continue } uri = $i; break }
      if (uri ~ re) { sub(/^deb[ \t]/, "deb-src "); print }
    }' "$@"
}

ensure_deb_src() {
  have_wolfssl_src && return 0
  local d=/etc/apt/sources.list.d tmp lists=() s822=()
  [ -f /etc/apt/sources.list ] && lists+=(/etc/apt/sources.list)
  for f in "$d"/*.list; do [ -f "$f" ] && [ "$f" != "$d/ringmq-deb-src.list" ] && lists+=("$f"); done
  for f in "$d"/*.sources; do [ -f "$f" ] && [ "$f" != "$d/ringmq-deb-src.sources" ] && s822+=("$f"); done
  tmp=$(mktemp)
  if ((${#s822[@]})); then
    deb822_to_src "${s822[@]}" >"$tmp"
    if [ -s "$tmp" ]; then
      echo "deps: adding deb-src entries: $d/ringmq-deb-src.sources"
      $SUDO install -m 644 "$tmp" "$d/ringmq-deb-src.sources"
    fi
  fi
  if ((${#lists[@]})); then
    list_to_src "${lists[@]}" >"$tmp"
    if [ -s "$tmp" ]; then
      echo "deps: adding deb-src entries: $d/ringmq-deb-src.list"
      $SUDO install -m 644 "$tmp" "$d/ringmq-deb-src.list"
    fi
  fi
  rm -f "$tmp"
  updated=0
  apt_update
  if ! have_wolfssl_src; then
    echo "deps: apt still finds no source package 'wolfssl' after adding deb-src entries;" >&2
    echo "deps: add a deb-src line for your Debian mirror, or configure with" >&2
    echo "deps: -DRINGMQ_SYSTEM_WOLFSSL=ON (Debian's slower libwolfssl, see docs/wolfssl.md)" >&2
    exit 1
  fi
}
ensure_deb_src
