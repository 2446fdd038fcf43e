"""A weight loader in the shape of nano-vllm's ``load_model(model, path)`` that asks fusecheck
which kernels to run before it reads a single weight: the check reads only safetensors headers and
norm tensors, so an INCOMPATIBLE model under strict, or an unreadable checkpoint, is refused before
gigabytes are paged in, and the model is told the decision before its weights arrive.

    decision = load_model(model, "/models/Qwen3-0.6B", use_custom_kernels=True)

The model may define ``set_kernels(decision)`` (called before loading) and nano-vllm's per-parameter
``weight_loader(param, tensor)``; without it a tensor is copied into its parameter.
"""

import os
import sys
import warnings

import torch
from torch import nn

import fusecheck

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


def default_weight_loader(param: nn.Parameter, loaded: torch.Tensor):
    if tuple(param.shape) != tuple(loaded.shape):
        raise ValueError(f"shape {tuple(loaded.shape)} does not fit parameter {tuple(param.shape)}")
    param.data.copy_(loaded)


def load_model(model: nn.Module, path, *, use_custom_kernels=True, kernels="fused",
               strict=False, force=False):
    """Decides the kernels for the checkpoint at ``path``, then loads its weights into ``model``.
    Returns the fusecheck.Decision (None when fused kernels were not requested). Raises
    fusecheck.IncompatibleModelError (strict) or fusecheck.CheckError before reading weights."""
    decision = None
    if use_custom_kernels or force:
        decision = fusecheck.decide_kernels(path, kernels=kernels, strict=strict, force=force)
        if decision.message:
            warnings.warn(decision.message, RuntimeWarning, stacklevel=2)
        if hasattr(model, "set_kernels"):
            model.set_kernels(decision)
    params, seen = dict(model.named_parameters()), set()
    files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
    if not files:
        raise ValueError(f"{path}: no *.safetensors files")
    for name in files:
        with safetensors_io.safe_open(os.path.join(path, name), "pt", "cpu") as f:
            for key in f.keys():
                if key not in params:
                    raise ValueError(f"{path}/{name}: tensor {key} is not used by the model")
                param = params[key]
                tensor = f.get_tensor(key)
                if not torch.isfinite(tensor).all():
                    raise ValueError(f"{path}/{name}: {key} holds NaN or Inf")
                loader = getattr(param, "weight_loader", default_weight_loader)
                with torch.no_grad():
                    loader(param, tensor.to(param.dtype))
                seen.add(key)
    missing = sorted(set(params) - seen)
    if missing:
        raise ValueError(f"{path}: missing tensors: {', '.join(missing[:3])}")
    return decision


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from qwen3_with_compatibility import Config, Qwen3ForCausalLM

    model = Qwen3ForCausalLM(Config(sys.argv[1]))
    model.set_kernels = lambda d: setattr(model, "use_fused", d.use_fused)
    d = load_model(model, sys.argv[1], strict="--strict" in sys.argv)
    print(f"kernels: {d.outcome} ({d.source}: {d.verdict})")
