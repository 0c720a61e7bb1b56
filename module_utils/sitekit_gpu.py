"""NVIDIA GPUs on a node: whether the driver shows any, and what HTCondor's GPU discovery reports about them.

Shared by the node self-check (``sitekit_selfcheck``) and its unit tests. Pure standard library.

- ``detect(root)``: the GPUs the NVIDIA driver exposes, from ``/proc/driver/nvidia/gpus/<bus id>`` (one directory
  per GPU) and the ``/dev/nvidia<N>`` device nodes, read under ``root`` (so recorded trees can be judged). A node
  without either has no usable NVIDIA GPU, and says why.
- ``parse_discovery(text)``: the output of ``condor_gpu_discovery -properties`` (HTCondor 9 and later: a
  ``DetectedGPUs`` list, a ``Common`` nested ad and one ``GPU_<id>`` nested ad per device; older releases print
  flat ``CUDA...`` attributes instead) as a list of devices with their properties.
"""

from __future__ import annotations

import os
import re

# The driver's view: one directory per GPU (named by PCI bus id), and one device node per GPU.
PROC_GPUS = "proc/driver/nvidia/gpus"
DEV_DIR = "dev"
_DEV_GPU = re.compile(r"^nvidia(\d+)$")
NO_GPU_REASON = "no NVIDIA GPU on this node (no /dev/nvidia<N> device, no /proc/driver/nvidia/gpus entry)"


def detect(root="/"):
    """The node's NVIDIA GPUs as the driver shows them: ``{"count", "devices", "bus_ids", "reason"}``.

    ``count`` is the larger of the two views (a GPU whose device node udev has not made yet is still a GPU);
    ``reason`` says why the count is 0, else it is None.
    """
    bus_ids, devices = [], []
    proc = os.path.join(root, PROC_GPUS)
    if os.path.isdir(proc):
        bus_ids = sorted(os.listdir(proc))
    dev = os.path.join(root, DEV_DIR)
    if os.path.isdir(dev):
        devices = sorted((n for n in os.listdir(dev) if _DEV_GPU.match(n)), key=lambda n: int(n[6:]))
    count = max(len(bus_ids), len(devices))
    return {
        "count": count,
        "devices": [f"/dev/{n}" for n in devices],
        "bus_ids": bus_ids,
        "reason": None if count else NO_GPU_REASON,
    }


# ---------------------------------------------------------------------------------------------
# condor_gpu_discovery -properties
# ---------------------------------------------------------------------------------------------
_ASSIGN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_NESTED_ITEM = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*?)\s*;')


def _value(text):
    """A ClassAd literal as Python: a string, a whole or real number, a boolean, else the text itself."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _nested(text):
    """``[ A=1; B="x"; ]`` as a dict."""
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        raise ValueError(f"not a nested ClassAd: {text!r}")
    return {m.group(1): _value(m.group(2)) for m in _NESTED_ITEM.finditer(body[1:-1] + ";")}


def parse_discovery(text):
    """``condor_gpu_discovery -properties`` output as ``{"ids", "devices", "common", "error"}``.

    ``devices`` holds one dict per id of ``DetectedGPUs`` (its own properties over the ``Common`` ones); the flat
    form of older releases (``CUDADeviceName``, ``CUDACapability``, ...) gives every device the same properties,
    with the ``CUDA`` prefix dropped. ``error`` is the discovery's own complaint (it prints ``DetectedGPUs=0`` and
    a ``condor_gpu_discovery_error`` attribute when it finds no driver), else None. Raises ValueError on text that
    is no discovery output.
    """
    attrs = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ASSIGN.match(line)
        if not match:
            raise ValueError(f"not a condor_gpu_discovery line: {line!r}")
        attrs[match.group(1)] = match.group(2)
    if "DetectedGPUs" not in attrs:
        raise ValueError("no DetectedGPUs attribute: not condor_gpu_discovery output")
    detected = _value(attrs["DetectedGPUs"])
    ids = [] if detected in (0, "", False) else [i.strip() for i in str(detected).split(",") if i.strip()]
    error = next((_value(v) for k, v in attrs.items() if k.lower().endswith("_error")), None)
    common = _nested(attrs["Common"]) if "Common" in attrs else {}
    flat = {k[4:]: _value(v) for k, v in attrs.items() if k.startswith("CUDA")}
    devices = []
    for gpu_id in ids:
        key = re.sub(r"[^A-Za-z0-9_]", "_", gpu_id)
        own = _nested(attrs[key]) if key in attrs else {}
        devices.append({**flat, **common, **own, "id": gpu_id})
    return {"ids": ids, "devices": devices, "common": common or flat, "error": error}
