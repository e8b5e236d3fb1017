"""The Makefile's stage wrapper: a stage fails when any command of its `a && b` list fails.

`make test-notebooks` runs two nbval commands as `a && b` inside the wrapper; `set -e` ignores a
failure of `a` there, so before the wrapper checked the list's status, four failing cells of
chapter 8 let `make test` succeed and skipped the training chapters.
"""
from __future__ import annotations

import shutil
import subprocess

import pytest

from book_files import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")

PROBE = """
probe-first-fails:
\t$(call stage,probe,false && echo second-ran)
probe-both-pass:
\t$(call stage,probe,true && echo second-ran)
"""


@pytest.mark.parametrize("target,status,second_ran", [("probe-first-fails", 1, False), ("probe-both-pass", 0, True)])
def test_a_stage_fails_when_any_command_of_its_list_fails(tmp_path, target, status, second_ran):
    probe = tmp_path / "probe.mk"
    probe.write_text(PROBE)
    run = subprocess.run(["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "-f", str(probe), target],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (run.returncode != 0) == bool(status), run.stdout + run.stderr
    assert ("second-ran" in run.stdout) == second_ran
    assert ("==> probe took" in run.stdout) == (status == 0)
