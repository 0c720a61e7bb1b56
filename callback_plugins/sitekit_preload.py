"""Load the Jinja2 filter and test plugins once, in the controller's main process, before the first task.

Ansible runs every task of every host in a worker process forked from the main process. A worker that
templates a filter or a test finds the plugins by loading every filter and test plugin file it can see
(ansible's own and the ones in filter_plugins/), compiling their source, because the main process never
needed them itself. Loaded here once, every worker inherits them with the fork.
"""

from __future__ import annotations

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader, test_loader
from ansible.template import Templar, trust_as_template

DOCUMENTATION = """
name: sitekit_preload
type: aggregate
short_description: load the Jinja2 filter and test plugins before workers fork
description:
  - Loads every filter and test plugin in the controller's main process when the playbook starts, so that the
    worker processes forked for each task and host inherit them instead of loading them again.
  - Prints nothing and changes nothing else; enabled wherever C(callback_plugins) points at this directory.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "sitekit_preload"
    CALLBACK_NEEDS_ENABLED = False

    def v2_playbook_on_start(self, playbook):
        for loader in (filter_loader, test_loader):
            for _plugin in loader.all():
                pass
        # The template engine's lexer, which every worker would otherwise build for its first template.
        Templar(loader=None).template(trust_as_template("{{ 'sitekit' | upper }}"))
