#!/usr/bin/env bash
# Fetch a debootstrap that knows every suite sitekit builds (trixie's), and the Ubuntu archive keyring,
# into .lab/tools without touching the host's apt configuration. The Debian mirror is read from the
# host's own apt sources at run time: no registry host name is written in this repository.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
tools=${SITEKIT_TOOLS:-$top/.lab/tools}
stamp=$tools/.done-v1
[[ -f $stamp ]] && exit 0

mirror=${SITEKIT_DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
  # deb822 sources first, then one-line sources; the first Debian archive (not -security) wins.
  mirror=$( (grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}';
             grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}') |
           grep -E '/debian/?$' | head -n 1) || true
fi
[[ -n $mirror ]] || { echo "fetch-tools: no Debian mirror in the host's apt sources; set SITEKIT_DEBIAN_MIRROR" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/etc/preferences.d" "$work/etc/apt.conf.d"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$work/sources.list"
aptopts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-"
         -o "Dir::State::lists=$work/lists" -o "Dir::Cache=$work/cache"
         -o "Dir::Etc::preferencesparts=$work/etc/preferences.d" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
apt-get "${aptopts[@]}" -qq update
(cd "$work" && apt-get "${aptopts[@]}" -qq download debootstrap ubuntu-keyring debian-archive-keyring)
rm -rf "$tools"; mkdir -p "$tools"
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$tools/root"; done
touch "$stamp"
echo "fetch-tools: debootstrap $(DEBOOTSTRAP_DIR=$tools/root/usr/share/debootstrap "$tools/root/usr/sbin/debootstrap" --version | awk '{print $2}') from $mirror (trixie)"
