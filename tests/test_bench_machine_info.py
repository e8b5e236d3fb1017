"""bench/machine_info.py: the one parser of /proc/cpuinfo behind every benchmark JSON's machine record."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("machine_info", ROOT / "bench" / "machine_info.py")
machine_info = importlib.util.module_from_spec(spec)
spec.loader.exec_module(machine_info)

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx avx2 fma
"""

EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx avx2 fma sha_ni
"""


def test_cpu_info_reads_the_first_processor_model_family_and_simd_flags(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(XEON)
    info = machine_info.cpu_info(cpuinfo=path)
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert info["family_model"] == "6/143"
    assert info["simd"] == ["amx_bf16", "amx_int8", "amx_tile", "avx", "avx2", "avx512_bf16", "avx512_vnni",
                            "avx512f", "fma"]      # the first processor's flags, not the last one's
    assert "flags_all" not in info
    assert machine_info.cpu_info(all_flags=True, cpuinfo=path)["flags_all"][:3] == ["amx_bf16", "amx_int8", "amx_tile"]
    assert machine_info.cpu_short_name(info) == "xeon_platinum"


@pytest.mark.parametrize("text, name", [(EPYC, "epyc_zen3"), (EPYC.replace(": 25", ": 23").replace(": 1\n", ": 49\n"), "epyc_zen2"),
                                        (EPYC.replace(": 25", ": 23"), "epyc_zen1")])
def test_cpu_short_name_names_the_zen_generation_that_kvm_hides(tmp_path, text, name):
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    info = machine_info.cpu_info(cpuinfo=path)
    assert info["simd"] == ["avx", "avx2", "fma"]
    assert machine_info.cpu_short_name(info) == name


def test_cpu_info_without_proc_cpuinfo_keeps_what_platform_knows(tmp_path):
    info = machine_info.cpu_info(cpuinfo=tmp_path / "missing")
    assert set(info) == {"processor", "cores"} and info["cores"] >= 1
    assert machine_info.cpu_short_name(info) == "cpu"
