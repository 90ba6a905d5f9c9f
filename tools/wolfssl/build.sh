#!/usr/bin/env bash
# Builds Debian's own wolfssl source package with AES-NI and assembly into a prefix, once.
#
#   tools/wolfssl/build.sh --prefix DIR --version X.Y.Z [--cc CC] [--jobs N]
#
# Debian's libwolfssl binary is built without AES-NI or assembly (AES-128-GCM ~30x slower than
# with them). This script fetches the *same* wolfssl as Debian ships (`apt-get source`, which
# applies Debian's security patches), regenerates the autotools files with Debian's autoconf,
# automake and libtool, and configures it with the speed flags plus only the features ringmq
# uses. Result: a static, position-independent libwolfssl.a with headers in DIR/{lib,include}.
#
# Pinning: --version is the upstream version ringmq expects (cmake/wolfssl.cmake). The build
# fails, saying why, unless Debian's candidate libwolfssl-dev, the installed libwolfssl-dev (if
# any) and the fetched source all carry that upstream version.
#
# Idempotent: DIR/.ringmq-stamp holds the key (Debian version, recipe, compiler, flags). When
# it matches, nothing is fetched or built and the script returns within a second or two. Concurrent
# runs on the same DIR are serialized with flock. Needs a deb-src entry for Debian's archive
# (bash tools/deps.sh adds one), network access on the first build only, no root.
set -euo pipefail
# bash reads a script while running it: the braces make it parse the whole file first, so a
# checkout or edit during a (long) build cannot change what the running build does.
{
RECIPE=1 # bump when the steps below change in a way the flags do not show
# The speed flags, then ringmq's features. Keep in step with docs/wolfssl.md.
FLAGS=(
  --enable-static --disable-shared --with-pic
  --disable-examples --disable-crypttests --disable-silent-rules
  --enable-aesni --enable-intelasm --enable-sp --enable-sp-asm
  --enable-tls13 --enable-certext --enable-sni --enable-alpn
  --enable-session-ticket --enable-crl --enable-ocsp
  --enable-certgen --enable-certreq --enable-keygen --enable-ip-alt-name
  --enable-asn=template
  --enable-ecc --enable-curve25519 --enable-ed25519 --enable-rsa
  --enable-aesgcm --enable-chacha --enable-poly1305
)
# No --enable-altcertchains: every certificate a client presents must verify, so a forged or
# unrelated CA certificate in the presented list fails the handshake. The one case it served, a
# trusted intermediate sent by the client although its root is not trusted, is accepted by
# net/tls.c's verify callback (a presented certificate byte-identical to a trust anchor).
# Options configure has no switch for: call the verify callback on every verified client
# certificate (net/tls_path.c builds the verified path from it for X.509 authentication;
# wolfSSL's own per-connection chain store, --enable-sessioncerts, costs 37 KB per TLS
# connection), and subject alternative names in generated certificates ("Automatic" TLS).
DEFINES="-DWOLFSSL_ALWAYS_VERIFY_CB -DWOLFSSL_ALT_NAMES -DSP_INT_BITS=8192"

prefix="" version="" cc="${CC:-cc}" jobs="$(nproc)"
while (($#)); do
  case "$1" in
  --prefix) prefix="$2"; shift 2 ;;
  --version) version="$2"; shift 2 ;;
  --cc) cc="$2"; shift 2 ;;
  --jobs) jobs="$2"; shift 2 ;;
  *) echo "usage: $0 --prefix DIR --version X.Y.Z [--cc CC] [--jobs N]" >&2; exit 2 ;;
  esac
done
[ -n "$prefix" ] && [ -n "$version" ] || { echo "wolfssl: --prefix and --version are required" >&2; exit 2; }
die() { echo "wolfssl: error: $*" >&2; exit 1; }

upstream_of() { # Debian version -> upstream version: drop epoch, revision, +dfsg/~ suffixes
  local v="$1"
  [[ "$v" == *:* ]] && v="${v#*:}"
  [[ "$v" == *-* ]] && v="${v%-*}"
  echo "${v%%[+~]*}"
}

mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
work="$prefix.work"
mkdir -p "$work"
exec 9>"$work/lock"
flock 9

unset CFLAGS CPPFLAGS LDFLAGS LIBS # the key below must describe the build completely
stamp="$prefix/.ringmq-stamp"
# ringmq's patches to Debian's source (tools/wolfssl/patches/*.patch, applied in name order).
patches_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/patches"
patches_sum="$(cat "$patches_dir"/*.patch 2>/dev/null | sha256sum | cut -c1-16)"
key_of() { # Debian version -> stamp key
  echo "wolfssl=$1 recipe=$RECIPE cc=$("$cc" --version 2>/dev/null | head -n1) flags=${FLAGS[*]} defines=$DEFINES patches=$patches_sum"
}

# Fast path: apt-cache takes a second or two, so when neither apt's package lists nor dpkg's
# database changed since the last build, the Debian version recorded then still holds.
if [ -f "$stamp" ] && [ -f "$prefix/lib/libwolfssl.a" ] && [ -f "$work/debian-version" ] &&
  [ "$stamp" -nt /var/lib/apt/lists ] && [ "$stamp" -nt /var/lib/dpkg/status ] &&
  [ "$(upstream_of "$(cat "$work/debian-version")")" = "$version" ] &&
  [ "$(cat "$stamp")" = "$(key_of "$(cat "$work/debian-version")")" ]; then
  echo "wolfssl: $version (Debian $(cat "$work/debian-version"), AES-NI/asm) up to date in $prefix"
  exit 0
fi

# --- which wolfssl Debian ships -------------------------------------------------------------
command -v apt-cache >/dev/null || die "apt-cache not found: this build expects Debian 12 (or use -DRINGMQ_SYSTEM_WOLFSSL=ON)"
candidate="$(apt-cache policy libwolfssl-dev 2>/dev/null | awk '$1 == "Candidate:" {print $2}')"
[ -n "$candidate" ] && [ "$candidate" != "(none)" ] ||
  die "apt knows no libwolfssl-dev candidate; run 'apt-get update' (bash tools/deps.sh does)"
[ "$(upstream_of "$candidate")" = "$version" ] ||
  die "Debian's candidate libwolfssl-dev is $candidate (upstream $(upstream_of "$candidate")) but ringmq pins wolfssl $version; update RINGMQ_WOLFSSL_VERSION in cmake/wolfssl.cmake after checking the new version, or configure with -DRINGMQ_SYSTEM_WOLFSSL=ON"
installed="$(dpkg-query -W -f='${Status} ${Version}\n' libwolfssl-dev 2>/dev/null | awk '/ ok installed / {print $NF}')"
if [ -n "$installed" ] && [ "$(upstream_of "$installed")" != "$version" ]; then
  die "installed libwolfssl-dev is $installed but ringmq pins wolfssl $version (apt-get install libwolfssl-dev to match Debian's candidate $candidate)"
fi

key="$(key_of "$candidate")"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -f "$prefix/lib/libwolfssl.a" ]; then
  echo "$candidate" >"$work/debian-version"
  touch "$stamp"
  echo "wolfssl: $version (Debian $candidate, AES-NI/asm) up to date in $prefix"
  exit 0
fi

# --- fetch Debian's source package -----------------------------------------------------------
# The source of the candidate binary: "Source: wolfssl" or "Source: wolfssl (5.5.4-2)" when the
# binary was rebuilt without a source change.
src_line="$(apt-cache show "libwolfssl-dev=$candidate" 2>/dev/null | awk -F': ' '$1 == "Source" {print $2; exit}')"
src_name="${src_line%% *}"
src_name="${src_name:-wolfssl}"
src_ver="$candidate"
[[ "$src_line" == *"("*")"* ]] && src_ver="$(sed 's/.*(\(.*\)).*/\1/' <<<"$src_line")"

log="$work/build.log"
: >"$log"
started=$SECONDS
# On stderr: tools/run.sh hides cmake's stdout, and this first build takes a few minutes.
echo "wolfssl: building Debian's $src_name $src_ver with AES-NI/asm into $prefix, once (log: $log)" >&2
rm -rf "$work/src" "$prefix"
mkdir -p "$work/src" "$prefix"
# apt drops root to _apt for downloads; let it write here so it does not warn.
[ "$(id -u)" -ne 0 ] || chown _apt "$work/src" 2>/dev/null || true
if ! (cd "$work/src" && apt-get source -q "$src_name=$src_ver") >>"$log" 2>&1; then
  tail -n 15 "$log" >&2
  die "'apt-get source $src_name=$src_ver' failed: apt needs a deb-src entry for Debian's archive (bash tools/deps.sh adds one, then apt-get update), dpkg-dev, and network access for the first build"
fi
srcdir="$work/src/$src_name-$version"
[ -d "$srcdir" ] ||
  die "apt-get source did not yield $src_name-$version (got: $(cd "$work/src" && ls -d */ 2>/dev/null | tr '\n' ' ')); ringmq pins wolfssl $version"
dsc_ver="$(awk '$1 == "Version:" {print $2; exit}' "$work/src"/*.dsc)"
[ "$(upstream_of "$dsc_ver")" = "$version" ] || die "the fetched source is $dsc_ver, ringmq pins wolfssl $version"

# --- configure, build, install ---------------------------------------------------------------
run() { # step name, command...
  local name="$1"; shift
  echo "== $name: $* (at $((SECONDS - started)) s)" >>"$log"
  if ! "$@" >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "$name failed (full log: $log)"
  fi
}
cd "$srcdir"
for p in "$patches_dir"/*.patch; do
  [ -f "$p" ] && run "patch $(basename "$p")" patch -p1 -N -i "$p"
done
run autoreconf autoreconf -fi
run configure ./configure --prefix="$prefix" CC="$cc" CPPFLAGS="$DEFINES" "${FLAGS[@]}"
run make make -j"$jobs"
run install make install

got="$(sed -n 's/^#define LIBWOLFSSL_VERSION_STRING "\(.*\)"/\1/p' "$prefix/include/wolfssl/version.h")"
[ "$got" = "$version" ] || die "built wolfssl reports version '$got', ringmq pins $version"
grep -q '^#define WOLFSSL_AESNI' "$prefix/include/wolfssl/options.h" ||
  die "configure dropped AES-NI (no WOLFSSL_AESNI in options.h); see $log"

cd "$work"
rm -rf "$work/src" # only the installed prefix is reused
echo "$candidate" >"$work/debian-version"
printf '%s\n' "$key" >"$stamp"
echo "wolfssl: built $version (Debian $src_ver) in $((SECONDS - started)) s"
exit 0
}
