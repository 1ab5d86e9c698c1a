"""What follows pooling in a sentence-transformers folder: its Dense layers, as pure steps on float32 tensors.

Each `*_Dense` module is `activation(x @ W.T + b)`; its weights load from the module's safetensors file (never a
pickle), its activation is a `torch.nn` class named in its config.json. Normalization stays where it was (the
encoder's L2 step after the cache), so a head changes nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from evalkit import EvalkitError


@dataclass(frozen=True)
class DenseLayer:
    weight: torch.Tensor  # (out_features, in_features), float32
    bias: torch.Tensor | None
    activation: torch.nn.Module


    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return dense(x, self)


def dense(x: torch.Tensor, layer: DenseLayer) -> torch.Tensor:
    """One Dense module: activation(linear(x)), in float32 on x's device."""
    bias = None if layer.bias is None else layer.bias.to(x.device)
    return layer.activation(torch.nn.functional.linear(x.float(), layer.weight.to(x.device), bias))


def apply_head(x: torch.Tensor, layers: tuple[DenseLayer, ...]) -> torch.Tensor:
    for layer in layers:
        x = dense(x, layer)
    return x


def activation_module(name: str) -> torch.nn.Module:
    """`torch.nn.modules.activation.Tanh` (or any `torch.nn` class path) -> an instance; anything else refused:
    sentence-transformers itself only imports `torch.*` activations without trust_remote_code."""
    cls_name = name.rsplit(".", 1)[-1]
    cls = getattr(torch.nn, cls_name, None) if name.startswith("torch.") else None
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise EvalkitError(f"Dense activation {name!r} is not a torch.nn module class; evalkit runs only those")
    return cls()


def load_dense(folder: Path, spec) -> DenseLayer:
    """A Dense module's weights (`spec`: st_folder.DenseSpec) from its safetensors file, checked against its
    config's in/out features and bias."""
    from safetensors.torch import load_file

    module = folder / spec.path
    files = sorted(module.glob("*.safetensors"))
    if not files:
        found = ", ".join(p.name for p in module.iterdir()) if module.is_dir() else "no such folder"
        raise EvalkitError(f"{module}: a Dense module without safetensors weights ({found}); evalkit never "
                           f"unpickles weights")
    tensors = load_file(str(files[0]))
    weight, bias = tensors.get("linear.weight"), tensors.get("linear.bias")
    expected = (spec.out_features, spec.in_features)
    if weight is None or tuple(weight.shape) != expected:
        raise EvalkitError(f"{files[0]}: linear.weight is {None if weight is None else tuple(weight.shape)}, "
                           f"its config says {expected}")
    if spec.bias != (bias is not None):
        raise EvalkitError(f"{files[0]}: bias={spec.bias} in its config, but the weights "
                           f"{'hold' if bias is not None else 'lack'} linear.bias")
    extra = sorted(set(tensors) - {"linear.weight", "linear.bias"})
    if extra:
        raise EvalkitError(f"{files[0]}: weights evalkit does not run: {', '.join(extra)}")
    return DenseLayer(weight.float(), None if bias is None else bias.float(), activation_module(spec.activation))


def load_head(cfg) -> tuple[DenseLayer, ...]:
    """The Dense layers `cfg.dense` names, from the model's sentence-transformers folder (none: ())."""
    if not cfg.dense:
        return ()
    from evalkit.encoding.st_folder import local_folder, read_st_folder

    folder = local_folder(cfg.name_or_path, cfg.revision)
    specs = {spec.path: spec for spec in read_st_folder(folder).dense}
    missing = [path for path in cfg.dense if path not in specs]
    if missing:
        raise EvalkitError(f"model.dense names {missing[0]!r}, which is not a Dense module of {folder} "
                           f"(it has: {', '.join(specs) or 'none'})")
    return tuple(load_dense(folder, specs[path]) for path in cfg.dense)
