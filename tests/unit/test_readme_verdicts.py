"""The README's verdict table is kernel_compat's current verdict on every recorded tree."""

import subprocess
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]


def test_readme_verdict_table_is_current():
    tool = TOP / "tools" / "verdict_table.py"
    res = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
