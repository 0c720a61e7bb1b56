#!/usr/bin/env bash
# Download Debian packages of any suite without touching the host's apt configuration.
# The Debian mirror is read from the host's own apt sources at run time (or SITEKIT_DEBIAN_MIRROR):
# no registry host name is written in this repository.
# usage: lab/apt-download.sh SUITE DEST_DIR PACKAGE...
set -euo pipefail
suite=$1 dest=$2; shift 2
mirror=${SITEKIT_DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
  # deb822 sources first, then one-line sources; the first Debian archive (not -security) wins.
  mirror=$( (grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}';
             grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}') |
           grep -E '/debian/?$' | head -n 1) || true
fi
[[ -n $mirror ]] || { echo "apt-download: no Debian mirror in the host's apt sources; set SITEKIT_DEBIAN_MIRROR" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/etc/preferences.d" "$dest"
# unstable's Release file on a mirror can be past its Valid-Until: accept it, the signature is still checked.
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg check-valid-until=no] $mirror $suite main" > "$work/sources.list"
aptopts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-"
         -o "Dir::State::lists=$work/lists" -o "Dir::Cache=$work/cache"
         -o "Dir::Etc::preferencesparts=$work/etc/preferences.d" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
apt-get "${aptopts[@]}" -qq update
(cd "$dest" && apt-get "${aptopts[@]}" -qq download "$@")
echo "apt-download: $* ($suite) from $mirror into $dest"
