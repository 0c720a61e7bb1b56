"""Filters of the base role's public entry points."""

from __future__ import annotations

from pathlib import Path

from ansible.errors import AnsibleFilterError


def base_library_files(sources, directory, mode="0644"):
    """The controller files in ``sources`` as ``sitekit_files`` entries in the node's ``directory``.

    Each entry is ``{path: <directory>/<name>, content: <the file's text>, mode}``: the node library's files go in the
    same module run as the directory and the caller's own files, and that run compares each with the node's copy.
    """
    if not isinstance(sources, (list, tuple)) or not all(isinstance(s, str) for s in sources):
        raise AnsibleFilterError(f"base_library_files: expected a list of controller paths, got {sources!r:.80}")
    if not isinstance(directory, str) or not directory.startswith("/"):
        raise AnsibleFilterError(
            f"base_library_files: the node's directory must be an absolute path, got {directory!r}"
        )
    entries = []
    for source in sources:
        try:
            content = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise AnsibleFilterError(f"base_library_files: cannot read {source}: {exc.strerror}") from None
        entries.append({"path": f"{directory.rstrip('/')}/{Path(source).name}", "content": content, "mode": mode})
    return entries


class FilterModule:
    """sitekit base filters."""

    def filters(self):
        return {"base_library_files": base_library_files}
