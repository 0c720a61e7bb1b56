"""The VO-box services filter: the admin's list of services, checked on the controller before any change."""

from __future__ import annotations

import os
import sys

from ansible.errors import AnsibleFilterError

# The checks live once, in module_utils/sitekit_vobox.py (the vobox_check module reads the same services on the node).
_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")
if _MODULE_UTILS not in sys.path:
    sys.path.insert(0, _MODULE_UTILS)
import sitekit_vobox  # noqa: E402


def vobox_services_plan(services):
    """vobox_services_list, checked and normalised (every key present); AnsibleFilterError naming each problem."""
    try:
        return sitekit_vobox.plan(services)
    except ValueError as exc:
        raise AnsibleFilterError(f"vobox_services_plan: {exc}") from None


def vobox_quadlet_problem(podman_output, platform):
    """Why the node's podman (installed, or to be installed) has no Quadlet, naming the platform and the fix; or ""."""
    return sitekit_vobox.quadlet_problem(podman_output, platform)


class FilterModule:
    """sitekit VO-box filters."""

    def filters(self):
        return {"vobox_services_plan": vobox_services_plan, "vobox_quadlet_problem": vobox_quadlet_problem}
