#!/usr/bin/env bash
# The packages the lab serves to its nodes from the shared origin directory (/srv/sitekit-origin/debs):
# Apptainer from Debian unstable, installed on Ubuntu nodes as a local release package (the
# air-gapped `apptainer_source: url` path). Fetched once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
debs=$(dirname "$here")/.lab/origin/debs
if [[ ! -e $debs/apptainer.deb ]]; then
  "$here/apt-download.sh" unstable "$debs" apptainer
  ln -sf "$(cd "$debs" && ls apptainer_*.deb | sort -V | tail -n 1)" "$debs/apptainer.deb"
fi
