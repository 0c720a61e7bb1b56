"""The lab's CVMFS as the tests see it, in either mount mode.

- ``expected_mode()``: the mode the cvmfs role must have given the lab's worker nodes, from this host's kernel
  (the nodes share it) or SITEKIT_LAB_MOUNT_MODE: lab/host-features.py's own decision.
- ``node_mode(sh)``: the mode a node got (the probe's configuration, written by the role).
- ``break_repository(sh, repo)``: make one node's repository unmountable the way real nodes break (autofs: the
  map points at a missing source; static: the mount helper finds no source and the mount is gone); returns the
  function that repairs it.

``sh(command, check=True)`` runs a shell command on the node and returns its standard output.
"""

import importlib.util
import json
import shlex
from pathlib import Path

TOP = Path(__file__).resolve().parents[3]
PROBE_CONFIG = "/usr/local/lib/sitekit/cvmfs-probe.json"
STANDIN_CONF = "/etc/sitekit-lab/cvmfs-standin.conf"
AUTOFS_MAP = "/etc/auto.cvmfs"

_spec = importlib.util.spec_from_file_location("host_features", TOP / "lab" / "host-features.py")
host_features = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(host_features)


def expected_mode():
    """(mode, why): autofs or static, and the reason (a skipped autofs proof reports it)."""
    return host_features.lab_mode(host_features.features())


def node_mode(sh):
    return json.loads(sh(f"cat {PROBE_CONFIG}"))["mount_mode"]


def mounted(sh, path):
    """Whether something other than an autofs trigger is mounted at ``path``."""
    return sh(f"findmnt --noheadings --output FSTYPE --mountpoint {path}", check=False).strip() not in ("", "autofs")


def break_repository(sh, repo):
    """Make ``repo`` unmountable on the node; returns repair(), which makes it mounted and readable again."""
    if node_mode(sh) == "autofs":
        saved = sh(f"cat {AUTOFS_MAP}")
        sh(f"sed -i 's#:/srv/sitekit-origin/{repo}#:/srv/sitekit-origin/gone#' {AUTOFS_MAP}")
        sh(f"umount -l /cvmfs/{repo}", check=False)

        def repair():
            sh(f"printf %s {shlex.quote(saved)} > {AUTOFS_MAP} && systemctl restart autofs")
            sh(f"ls /cvmfs/{repo} >/dev/null && systemctl reset-failed")

    else:
        saved = sh(f"cat {STANDIN_CONF}")
        sh(f"sed -i 's#^ORIGIN=.*#ORIGIN=/srv/sitekit-origin/gone#' {STANDIN_CONF}")
        sh(f"umount -l /cvmfs/{repo}", check=False)

        def repair():
            sh(f"printf %s {shlex.quote(saved)} > {STANDIN_CONF}")
            sh(f"mount /cvmfs/{repo} && ls /cvmfs/{repo} >/dev/null && systemctl reset-failed")

    return repair
