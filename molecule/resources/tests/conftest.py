"""Shared testinfra fixtures: expected values come from the inventory Molecule wrote."""

import pytest


@pytest.fixture
def hostvars(host):
    return host.ansible.get_variables()
