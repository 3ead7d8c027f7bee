"""Devices: one way to name where torch work runs (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``).

``auto`` picks the first CUDA GPU when torch sees one, else the CPU (never ``mps``: on Apple silicon
ask for it by name). Asking for a device this machine lacks is a one-line error before any work.
On the CPU every code path is the one the library always had, so CPU results stay bit-identical.
"""

from __future__ import annotations

import re

from .errors import FractalError

DEVICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(device: str | None = "auto") -> str:
    """A concrete torch device string for ``device`` (checked against this machine)."""
    spec = "auto" if device is None else str(device).strip().lower()
    if spec == "cpu" or (spec == "auto" and not _may_have_cuda()):
        return "cpu"  # without importing torch (the onnx encoder path never needs it)
    import torch

    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    m = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if m:
        if not torch.cuda.is_available():
            raise FractalError(
                f"device {device!r}: torch sees no CUDA GPU on this machine (torch {torch.__version__}); "
                f"use --device cpu (or auto), or install a CUDA build of torch"
            )
        n = torch.cuda.device_count()
        if m.group(1) is not None and int(m.group(1)) >= n:
            raise FractalError(f"device {device!r}: this machine has {n} CUDA device(s), numbered 0..{n - 1}")
        return spec
    if spec == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise FractalError(
                f"device {device!r}: Apple's MPS backend is not available here; use --device cpu or auto"
            )
        return "mps"
    raise FractalError(f"unknown device {device!r}; use {DEVICES}")


def _may_have_cuda() -> bool:
    """False only when this machine surely has no NVIDIA driver (Linux without /dev/nvidiactl, macOS)."""
    import os
    import sys

    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):  # the NVIDIA driver's device, or WSL2's GPU device
        return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/dxg")
    return True
