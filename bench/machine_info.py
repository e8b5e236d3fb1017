"""What the benchmark scripts record about the CPU they ran on: one parser of ``/proc/cpuinfo``.

Speed ratios only mean something next to the machine that measured them (the model, and the SIMD
flags that decide which kernels run: AVX2, AVX-512, VNNI, AMX), so every JSON under
``bench/results`` carries :func:`cpu_info`. ``bench/`` is not a package: scripts import this
module as a sibling (``from machine_info import cpu_info``), tests load it by path.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["cpu_info", "cpu_short_name", "SIMD_PREFIXES"]

SIMD_PREFIXES = ("avx", "fma", "amx")   # with any flag naming VNNI: the extensions that pick kernels


def _cpuinfo_fields(text: str) -> tuple[dict[str, str], list[str]]:
    """The first processor's ``key: value`` fields and its flags (every processor repeats them)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break            # the end of the first processor's block
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields, fields.get("flags", "").split()


def cpu_info(all_flags: bool = False, cpuinfo: str | Path = "/proc/cpuinfo") -> dict:
    """``processor``, ``cores``, and where ``/proc/cpuinfo`` exists: ``model`` (its model name),
    ``family_model`` ("family/model": names the micro-architecture where the model name is vague,
    e.g. "AMD EPYC" under KVM), ``simd`` (the sorted SIMD flags), and with ``all_flags`` every flag."""
    info: dict = {"processor": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    try:
        fields, flags = _cpuinfo_fields(Path(cpuinfo).read_text())
    except OSError:
        return info
    if "model name" in fields:
        info["model"] = fields["model name"]
    info["family_model"] = f"{fields.get('cpu family', '?')}/{fields.get('model', '?')}"
    info["simd"] = sorted(f for f in set(flags) if f.startswith(SIMD_PREFIXES) or "vnni" in f)
    if all_flags:
        info["flags_all"] = sorted(set(flags))
    return info


def cpu_short_name(info: dict) -> str:
    """e.g. ``epyc_zen3``, for result file names: the model name's first two meaningful words, plus
    the Zen generation from family/model on AMD."""
    family, _, model = info.get("family_model", "?/?").partition("/")
    zen = {"23": "zen1" if model in ("1", "17", "24") else "zen2", "25": "zen3" if model in ("1", "33", "80") else "zen4",
           "26": "zen5"}
    words = [w for w in info.get("model", "cpu").lower().replace("(r)", "").replace("(tm)", "").split()
             if w not in ("amd", "intel", "processor", "cpu", "@")]
    name = "_".join(words[:2]) or "cpu"
    arch = zen.get(family) if "amd" in info.get("model", "").lower() else None
    return f"{name}_{arch}" if arch else name
