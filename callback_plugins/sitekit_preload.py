"""Load what every worker needs once, in the controller's main process, before the workers fork.

Ansible runs every task of every host in a worker process forked from the main process. A worker that
templates a filter or a test finds the plugins by loading every filter and test plugin file it can see
(ansible's own and the ones in filter_plugins/), compiling their source, because the main process never
needed them itself. A worker that runs a module resolves the module's name and its action plugin, imports the
connection plugin and the JSON profiles that carry the module's arguments and result, for the same reason.
Loaded here once (the plugins when the playbook starts, a task's module and action when the task starts), every
worker inherits them with the fork.
"""

from __future__ import annotations

import importlib
import pkgutil

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import action_loader, connection_loader, filter_loader, module_loader, test_loader
from ansible.template import Templar, trust_as_template

DOCUMENTATION = """
name: sitekit_preload
type: aggregate
short_description: load the Jinja2 filter and test plugins before workers fork
description:
  - Loads every filter and test plugin in the controller's main process when the playbook starts, so that the
    worker processes forked for each task and host inherit them instead of loading them again.
  - Resolves each task's module and action plugin when the task starts, and imports the connection plugins and
    the JSON serialization profiles once, for the same reason.
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
        # The JSON profiles that encode a module's arguments and decode its result, imported by name in every worker.
        for package in ("ansible.module_utils._internal._json._profiles", "ansible._internal._json._profiles"):
            for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
                importlib.import_module(f"{package}.{info.name}")
        for name in ("ssh", "local"):
            connection_loader.get(name, class_only=True)

    def v2_playbook_on_task_start(self, task, is_conditional):
        """Resolve the task's module and its action plugin the way the worker would (TaskExecutor), once per task."""
        try:
            collections = task.collections
            module = module_loader.find_plugin_with_context(task.action, collection_list=collections)
            if module.resolved and module.action_plugin:
                handler = module.action_plugin
            elif action_loader.has_plugin(task.action, collection_list=collections):
                handler = task.action
            else:
                handler, collections = "ansible.legacy.normal", None
            action_loader.get(handler, class_only=True, collection_list=collections)
        except Exception:  # an optimisation only: the worker resolves it again and reports any error
            pass
