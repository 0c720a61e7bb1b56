"""Filters of the base role's public entry points."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ansible.errors import AnsibleFilterError


def base_files_to_ship(sources, found, mode="0644", owner="root"):
    """The controller files in ``sources`` whose copy in the node's directory is missing or differs.

    ``found`` is the ``files`` list of an ``ansible.builtin.find`` of that directory with ``get_checksum: true``: a
    node copy matches when its SHA-1, mode and owner are the wanted ones. One find on the node then decides every
    file, instead of one remote comparison per file.
    """
    if not isinstance(sources, (list, tuple)) or not all(isinstance(s, str) for s in sources):
        raise AnsibleFilterError(f"base_files_to_ship: expected a list of controller paths, got {sources!r:.80}")
    if not isinstance(found, (list, tuple)) or not all(isinstance(f, dict) and "path" in f for f in found):
        raise AnsibleFilterError(
            "base_files_to_ship: expected the files list of ansible.builtin.find (get_checksum: true), "
            f"got {found!r:.80}"
        )
    held = {Path(f["path"]).name: f for f in found}
    stale = []
    for source in sources:
        try:
            checksum = hashlib.sha1(Path(source).read_bytes()).hexdigest()
        except OSError as exc:
            raise AnsibleFilterError(f"base_files_to_ship: cannot read {source}: {exc.strerror}") from None
        copy = held.get(Path(source).name)
        if not copy or copy.get("checksum") != checksum or copy.get("mode") != mode or copy.get("pw_name") != owner:
            stale.append(source)
    return stale


class FilterModule:
    """sitekit base filters."""

    def filters(self):
        return {"base_files_to_ship": base_files_to_ship}
