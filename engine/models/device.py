"""Devices and precision: CUDA or CPU, the dtype a precision setting means there, the attention
implementation that can run there (each fallback says why on stderr)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from engine.errors import UserError


@dataclass(frozen=True)
class DeviceInfo:
    device: str  # "cuda" or "cpu"
    bf16: bool
    name: str


def device_info() -> DeviceInfo:
    import torch

    if torch.cuda.is_available():
        return DeviceInfo("cuda", torch.cuda.is_bf16_supported(), torch.cuda.get_device_name(0))
    return DeviceInfo("cpu", False, "cpu")


def resolve_dtype(precision: str, device: DeviceInfo):
    """'auto' is bf16 on a GPU that supports it and fp32 elsewhere; bf16/fp16 on CPU degrade to fp32."""
    import torch

    if precision == "auto":
        return torch.bfloat16 if device.bf16 else torch.float32
    if precision in ("bf16", "fp16") and device.device == "cpu":
        print(f"note: precision={precision} needs a CUDA GPU; using fp32 on CPU", file=sys.stderr)
        return torch.float32
    if precision == "bf16" and not device.bf16:
        raise UserError("precision=bf16 but this GPU has no bf16 support; use fp16 or fp32")
    mapping = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if precision not in mapping:
        raise UserError(f"precision must be auto, bf16, fp16 or fp32, got {precision!r}")
    return mapping[precision]


def resolve_attn_implementation(requested: str, device: DeviceInfo) -> str | None:
    """flash_attention_2 only on CUDA with flash-attn installed; otherwise sdpa, saying why."""
    if requested in ("auto", "", None):
        return "sdpa"
    if requested == "flash_attention_2":
        if device.device != "cuda":
            print("note: flash_attention_2 needs a CUDA GPU; using sdpa on CPU", file=sys.stderr)
            return "sdpa"
        try:
            import flash_attn  # noqa: F401
        except ImportError:
            print("note: flash-attn is not installed; using sdpa", file=sys.stderr)
            return "sdpa"
    return requested
