#!/usr/bin/env bash
# Builds the ringmq container image on a machine without a reachable container registry.
#
#   bash deploy/container/build.sh [--tag NAME] [--rebuild-base]
#
# 1. Installs podman, buildah, mmdebstrap, runc (and catatonit, the pause process of `podman kube
#    play`) with apt when missing (root or sudo).
# 2. Builds a minimal Debian 12 (bookworm) base image from Debian's packages with mmdebstrap,
#    from the Debian mirror apt already uses here, and imports it (podman import) as
#    localhost/ringmq-debian:bookworm; once, unless --rebuild-base.
# 3. podman build -f deploy/container/Containerfile with that base (context: the repository).
#
# podman runs with deploy/container/containers.conf (CONTAINERS_CONF): runtime runc (crun
# refuses this machine's hybrid cgroup setup) and ulimits within the hard limits. The build
# stage reaches Debian's archive over the host network (apt-get install, apt-get source).
# Prints the image name on the last line of stdout. Each build after a source change leaves an
# untagged build-stage image (~100 MB of its own on top of the shared 1.8 GB of tools); `podman
# image prune -f --filter label=org.ringmq.stage=build` frees them, and with them the cache (the
# next build starts again from the Debian packages and wolfSSL, ~5 min). Where debian:bookworm-slim can be pulled,
# `podman build -f deploy/container/Containerfile -t ringmq .` is all it takes.
set -euo pipefail
{
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
tag="localhost/ringmq:latest"
base="localhost/ringmq-debian:bookworm"
rebuild_base=0
while (($#)); do
  case "$1" in
  --tag) tag="$2"; shift 2 ;;
  --rebuild-base) rebuild_base=1; shift ;;
  *) echo "usage: $0 [--tag NAME] [--rebuild-base]" >&2; exit 2 ;;
  esac
done
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
say() { echo "container: $*" >&2; }
die() { say "error: $*"; exit 1; }

# --- tools ---------------------------------------------------------------------------------
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for p in podman buildah mmdebstrap runc uidmap catatonit; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Rootful podman: storage under /var/lib/containers, and the build stage needs to chown.
[ "$(id -u)" -eq 0 ] || PODMAN=(sudo --preserve-env=CONTAINERS_CONF podman)
PODMAN=("${PODMAN[@]:-podman}")

# --- base image ----------------------------------------------------------------------------
# The Debian archive apt uses here (deb822 *.sources or one-line *.list), else deb.debian.org.
debian_mirror() {
  local f uri=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri="$(awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' "$f")"
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ]; then
    uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }')"
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}
if ((rebuild_base)) || ! "${PODMAN[@]}" image exists "$base"; then
  mirror="$(debian_mirror)"
  sec="${mirror%/debian}/debian-security"
  say "building base image $base from $mirror (mmdebstrap, minbase)"
  tar="$(mktemp --suffix=.tar)"
  trap 'rm -f "$tar"' EXIT
  $SUDO mmdebstrap --quiet --variant=minbase --include=ca-certificates \
    --aptopt='Acquire::Retries "3"' \
    bookworm "$tar" \
    "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
    "deb $sec bookworm-security main" >&2 || die "mmdebstrap failed"
  "${PODMAN[@]}" import --change 'CMD ["/bin/bash"]' "$tar" "$base" >/dev/null || die "podman import failed"
  rm -f "$tar"
fi

# --- image ---------------------------------------------------------------------------------
say "building $tag (first build compiles wolfSSL and ringmq: several minutes; later builds reuse the layers)"
"${PODMAN[@]}" build --network host --build-arg "BASE=$base" \
  -f "$here/Containerfile" -t "$tag" "$repo" >&2 || die "podman build failed"
echo "$tag"
exit 0
}
