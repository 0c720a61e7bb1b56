#!/usr/bin/env bash
# Fetch a debootstrap that knows every suite sitekit builds (trixie's), and the Ubuntu archive keyring,
# into .lab/tools without touching the host's apt configuration (lab/apt-download.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
tools=${SITEKIT_TOOLS:-$top/.lab/tools}
stamp=$tools/.done-v1
[[ -f $stamp ]] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$here/apt-download.sh" trixie "$work" debootstrap ubuntu-keyring debian-archive-keyring > /dev/null
rm -rf "$tools"; mkdir -p "$tools"
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$tools/root"; done
touch "$stamp"
echo "fetch-tools: debootstrap $(DEBOOTSTRAP_DIR=$tools/root/usr/share/debootstrap "$tools/root/usr/sbin/debootstrap" --version | awk '{print $2}') (trixie)"
