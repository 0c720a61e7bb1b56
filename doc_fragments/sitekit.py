"""Documentation shared by sitekit's modules (``extends_documentation_fragment: [sitekit.read_only]``)."""


class ModuleDocFragment:
    # A read-only probe: it changes nothing, so it runs in check mode as it does otherwise, and has nothing to diff.
    READ_ONLY = r"""
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

    # A module that changes files: check mode reports what would change without writing, diff mode shows how.
    CHANGES = r"""
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
"""
