"""What the benchmarks print about the machine they ran on."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_flags() -> str:
    """The CPU's model and the flags that matter for the network's speed."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown (no /proc/cpuinfo)"
    words = set(text.split())
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                  if ln.startswith("model name")), "?")
    keep = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_fp16")
            if f in words]
    caps = [f"{var}={os.environ[var]}" for var in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
                                                    "ATEN_CPU_CAPABILITY")
            if os.environ.get(var)]
    capped = f"; torch's kernels capped by {' '.join(caps)}" if caps else ""
    return f"{model}: {' '.join(keep) or 'none of avx2/avx512/amx'}{capped}"
