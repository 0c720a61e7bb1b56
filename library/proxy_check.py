#!/usr/bin/python
"""Ansible module proxy_check: does a site squid cache CVMFS/Frontier objects and refuse other destinations?"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: proxy_check
short_description: Check that a squid caches an object and refuses a destination it must not serve
description:
  - Sends a plain HTTP proxy request for O(url) to O(proxy), the way CVMFS and Frontier clients use a squid, and
    then the same request again. The second answer must say it came from the cache, read from the response headers
    the proxy adds, C(Cache-Status) (RFC 9211, squid 6 and later, e.g. C(squid1;hit)) or C(X-Cache)
    (C(HIT from squid1), older squid and frontier-squid).
  - Returns the status, latency, size and cache verdict of each fetch, and how much faster the cached one was.
  - With O(denied_url), also asks for a destination outside the allowed domains, which the proxy must refuse
    (403), or it is an open proxy.
  - Each failure comes with its cause and remedy (connection refused, timeout, 403 from a client or destination
    outside the ACLs, 5xx when the squid cannot reach the origin, an uncacheable object).
  - Read-only on the node it runs on, as it only makes HTTP requests (the first fetch fills the squid's cache, which
    is what a client would do). Runs the same in check mode and always returns changed=false.
options:
  proxy:
    description: The squid, as C(http://HOST:PORT) or C(HOST:PORT).
    type: str
    required: true
  url:
    description:
      - An absolute C(http://) URL of a small, cacheable object behind the squid, such as a CVMFS data object of a
        stratum-1. A manifest (C(.cvmfspublished)) may be cached only for about a minute.
    type: str
    required: true
  denied_url:
    description: An absolute C(http://) URL outside the allowed destinations, which the squid must refuse.
    type: str
  timeout:
    description: Seconds each request may take.
    type: float
    default: 10
  fail_on_error:
    description:
      - Fail the task when the object was not fetched, the second fetch was not a cache hit, or O(denied_url) was
        served. The result keys are returned either way.
    type: bool
    default: true
extends_documentation_fragment: [action_common_attributes, sitekit.read_only]
notes:
  - Run it on a client node (a worker node) to test the squid's client ACL as well; from a node outside the
    squid's client networks every fetch is refused with 403.
  - The latency of the first fetch includes the squid's fetch from the origin; of the second, only the squid.
seealso:
  - name: squid configuration reference
    description: http_access, dstdomain, cache_dir and the other directives the squid role sets.
    link: https://www.squid-cache.org/Doc/config/
author:
  - sitekit
"""

EXAMPLES = r"""
- name: Ensure the site squid caches CVMFS objects and is not an open proxy
  proxy_check:
    proxy: http://squid1.example.org:3128
    url: http://cvmfs-stratum-one.cern.ch:8000/cvmfs/atlas.cern.ch/.cvmfswhitelist
    denied_url: http://www.example.com/

- name: Only report, for a compliance run
  proxy_check:
    proxy: squid1.example.org:3128
    url: http://cvmfs-stratum-one.cern.ch:8000/cvmfs/atlas.cern.ch/.cvmfswhitelist
    fail_on_error: false
  register: __proxy

- name: Show why
  ansible.builtin.debug:
    msg: "{{ __proxy.problems | map(attribute='remedy') | list }}"
  when: not __proxy.ok
"""

RETURN = r"""
ok:
  description: Whether the object was fetched, the second fetch came from the cache, and O(denied_url) was refused.
  returned: always
  type: bool
  sample: true
proxy:
  description: The proxy asked, as host:port.
  returned: always
  type: str
  sample: squid1:3128
url:
  description: The object fetched.
  returned: always
  type: str
cached:
  description: Whether the second fetch came from the squid's cache.
  returned: always
  type: bool
  sample: true
speedup:
  description: First fetch's latency over the second's, when the second was a hit; null otherwise.
  returned: always
  type: float
  sample: 8.1
first:
  description: The first fetch.
  returned: always
  type: dict
  contains:
    status:
      description: HTTP status, null when the connection failed.
      type: int
      sample: 200
    seconds:
      description: Latency of the whole request, connection included.
      type: float
      sample: 0.0083
    bytes:
      description: Body size.
      type: int
      sample: 1020
    hit:
      description: Whether the proxy says it answered from its cache; null when it does not say.
      type: bool
      sample: false
    evidence:
      description: The header the verdict was read from.
      type: str
      sample: "Cache-Status: squid1;detail=mismatch"
    headers:
      description: The response headers.
      type: dict
    error:
      description: The connection error, null when there was an answer.
      type: str
second:
  description: The second fetch (same keys as RV(first)); null when the first failed.
  returned: always
  type: dict
denied_url:
  description: The destination that must be refused, null when not asked.
  returned: always
  type: str
denied:
  description: Whether the proxy refused O(denied_url) with 403; null when not asked.
  returned: always
  type: bool
  sample: true
denied_response:
  description: The answer for O(denied_url) (same keys as RV(first)); null when not asked.
  returned: always
  type: dict
message:
  description: Every problem with its cause and remedy in one line; null when RV(ok).
  returned: always
  type: str
  sample: "proxy_check squid1:3128: the second fetch of http://... did not come from the cache (...): ... Fix: ..."
problems:
  description: Each problem with its cause and remedy.
  returned: always
  type: list
  elements: dict
  sample:
    - problem: "squid1:3128 served http://www.example.com/ (200): it is an open proxy"
      cause: the squid does not restrict destinations to the CVMFS and Frontier domains
      remedy: deny every other destination
"""

# Imports follow the documentation, in the order every Ansible module uses.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# AnsiballZ bundles module_utils/sitekit_proxy.py with the module. From the repository (unit tests, or
# `PYTHONPATH=module_utils python library/proxy_check.py ARGS.json`) module_utils is on the path instead.
try:
    from ansible.module_utils import sitekit_proxy
except ImportError:
    import sitekit_proxy

ARGUMENT_SPEC = {
    "proxy": {"type": "str", "required": True},
    "url": {"type": "str", "required": True},
    "denied_url": {"type": "str"},
    "timeout": {"type": "float", "default": 10},
    "fail_on_error": {"type": "bool", "default": True},
}


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    params = module.params
    try:
        sitekit_proxy.parse_proxy(params["proxy"])
        sitekit_proxy.parse_url(params["url"], "url")
        if params["denied_url"]:
            sitekit_proxy.parse_url(params["denied_url"], "denied_url")
    except ValueError as exc:
        module.fail_json(msg=f"proxy_check: {exc}.")
    if params["timeout"] <= 0:
        module.fail_json(msg=f"proxy_check: timeout must be a positive number of seconds, got {params['timeout']}.")

    result = sitekit_proxy.check(params["proxy"], params["url"], params["denied_url"], params["timeout"])
    if params["fail_on_error"] and not result["ok"]:
        module.fail_json(msg=sitekit_proxy.failure_message(result), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
