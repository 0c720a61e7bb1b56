"""sitekit_gpu: NVIDIA GPUs as the driver shows them (recorded trees) and HTCondor's GPU discovery output.

tests/unit/data/gpu/ holds condor_gpu_discovery -properties texts (its README says which were written for the tests
and which one is real); the driver's view is judged from trees made in tmp directories.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sitekit_gpu as gpu

DATA = Path(__file__).resolve().parents[1] / "data" / "gpu"


def discovery(name):
    return gpu.parse_discovery((DATA / name).read_text(encoding="utf-8"))


def test_two_a100s_with_their_common_properties():
    result = discovery("two-a100.txt")
    assert result["ids"] == ["GPU-4a2c5b38", "GPU-9f0e1d7a"] and result["error"] is None
    first, second = result["devices"]
    assert first["id"] == "GPU-4a2c5b38" and first["DevicePciBusId"] == "0000:07:00.0"
    assert second["DevicePciBusId"] == "0000:0F:00.0"
    # What every device shares comes from Common.
    assert {d["DeviceName"] for d in result["devices"]} == {"NVIDIA A100-SXM4-40GB"}
    assert first["Capability"] == 8.0 and first["GlobalMemoryMb"] == 40339 and first["ECCEnabled"] is True
    assert result["common"]["DriverVersion"] == 12.2


def test_devices_that_differ_keep_their_own_properties():
    result = discovery("mixed-t4-v100.txt")
    names = [d["DeviceName"] for d in result["devices"]]
    assert names == ["Tesla T4", "Tesla V100-PCIE-32GB"]
    assert [d["Capability"] for d in result["devices"]] == [7.5, 7.0]
    assert all(d["DriverVersion"] == 11.4 for d in result["devices"])


def test_the_flat_format_of_older_releases():
    result = discovery("flat-8x-one-k80.txt")
    assert result["ids"] == ["CUDA0"]
    (device,) = result["devices"]
    assert device["DeviceName"] == "Tesla K80" and device["Capability"] == 3.7 and device["GlobalMemoryMb"] == 11441


def test_no_gpu_and_no_driver():
    assert discovery("none-lab.txt") == {"ids": [], "devices": [], "common": {}, "error": None}
    broken = discovery("no-driver.txt")
    assert broken["ids"] == [] and "libnvidia-ml.so.1" in broken["error"]


@pytest.mark.parametrize("text", ["", "hello world\n", "Common=[ A=1; ]\n"])
def test_text_that_is_no_discovery_output_is_refused(text):
    with pytest.raises(ValueError):
        gpu.parse_discovery(text)


def make_tree(root, proc=(), dev=()):
    for bus in proc:
        (root / "proc/driver/nvidia/gpus" / bus).mkdir(parents=True)
    (root / "dev").mkdir(exist_ok=True)
    for name in dev:
        (root / "dev" / name).write_text("")
    return str(root)


def test_a_node_without_gpus_says_why(tmp_path):
    # nvidiactl and nvidia-uvm exist on nodes with the driver but no GPU: they are no GPU.
    result = gpu.detect(make_tree(tmp_path, dev=["null", "nvidiactl", "nvidia-uvm", "nvidia-modeset"]))
    assert result["count"] == 0 and result["devices"] == []
    assert result["reason"] == gpu.NO_GPU_REASON


def test_gpus_from_the_driver_and_the_device_nodes(tmp_path):
    result = gpu.detect(
        make_tree(tmp_path, proc=["0000:07:00.0", "0000:0f:00.0"], dev=["nvidia1", "nvidia0", "nvidiactl", "nvidia10"])
    )
    assert result["devices"] == ["/dev/nvidia0", "/dev/nvidia1", "/dev/nvidia10"]
    assert result["bus_ids"] == ["0000:07:00.0", "0000:0f:00.0"]
    assert result["count"] == 3 and result["reason"] is None


def test_a_gpu_whose_device_node_is_not_made_yet_still_counts(tmp_path):
    result = gpu.detect(make_tree(tmp_path, proc=["0000:3b:00.0"]))
    assert result["count"] == 1 and result["devices"] == []
