"""Graves' (2013, §4) derivative clipping: output-layer derivatives to ±100, LSTM derivatives to ±10.

Graves' clipping (``clip="graves"``)
-----------------------------------
Graves (2013, §4) clips "the derivatives with respect to the network outputs" to [−100, 100] and "the LSTM
derivatives" to [−10, 10].  The thresholds are in the units of Graves' loss, the NLL *summed* over the
batch, so with a loss averaged over ``N`` points (or sequences, ``loss_unit="sequence"``) the clamp is at
``±limit / N``.  What is implemented (:class:`GravesClipper`), best first:

* a model that defines ``set_gradient_clipping(output, lstm)`` is handed the limits before every backward
  and clips inside its own backward pass (the only way to reach the gate derivatives of a hand-written
  recurrence);
* otherwise backward hooks clamp, element by element, the gradient flowing into the output layer's outputs
  (the MDN parameters before their non-linearities) and into every ``nn.LSTM``/``nn.LSTMCell``'s outputs
  (the hidden and cell states it returns — for fused LSTMs the gates inside are out of reach, so this is
  the derivative w.r.t. the layer's outputs, not its gates).  A model can name its layers with
  ``clip_targets() -> {"output": [modules], "lstm": [modules]}``; else the output layer is the last
  ``nn.Linear`` of its ``output_layer``/``head``/``mdn`` attribute (or of the model);
* a layer whose weights the model uses without calling it as a module never fires its hook: the trainer
  then clips the gradient norm (``clip_norm``) for that step instead and warns once.  Nothing is clamped
  silently that was not asked for, and nothing asked for is silently skipped.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from .config import TrainError


def _clamp_tensors(obj: Any, limit_fn: Callable[[], float]) -> None:
    if torch.is_tensor(obj):
        if obj.requires_grad and torch.is_grad_enabled():
            obj.register_hook(lambda g: g.clamp(-limit_fn(), limit_fn()))
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            _clamp_tensors(o, limit_fn)
    elif hasattr(obj, "data") and torch.is_tensor(getattr(obj, "data")):  # PackedSequence
        _clamp_tensors(obj.data, limit_fn)


class GravesClipper:
    """Graves' derivative clipping: ±``output`` on the derivatives flowing into the output layer's outputs
    and ±``lstm`` on the LSTM derivatives, both in summed-loss units (divided by ``scale``, the count the
    loss is averaged over; the trainer sets it before each backward).  See the module docstring.

    Three ways, best first:

    1. the model implements ``set_gradient_clipping(output, lstm)`` (limits already divided by the scale,
       ``None`` switches it off) and clips inside its own backward — the only way to reach the gate
       derivatives of a hand-written recurrence;
    2. backward hooks on the outputs of the model's LSTM modules and output layer, registered by forward
       hooks (needs the model to *call* those modules);
    3. if a target's forward hook never fired during a training step (the model used its weights directly),
       the trainer falls back to ``clip_grad_norm_`` with ``clip_norm`` for that step and warns once.
    """

    def __init__(self, model: nn.Module, output: float = 100.0, lstm: float = 10.0):
        self.model = model
        self.output, self.lstm, self.scale = float(output), float(lstm), 1.0
        self.native = callable(getattr(model, "set_gradient_clipping", None))
        self._handles: list = []
        self._fired: dict[str, int] = {}
        self.output_modules: list[nn.Module] = []
        self.lstm_modules: list[nn.Module] = []
        if self.native:
            return
        targets = model.clip_targets() if hasattr(model, "clip_targets") else {}
        lstms = list(targets.get("lstm") or [m for m in model.modules() if isinstance(m, (nn.LSTM, nn.LSTMCell))])
        outs = list(targets.get("output") or [])
        if not outs:
            for name in ("output_layer", "head", "mdn", "output"):
                m = getattr(model, name, None)
                if isinstance(m, nn.Module):
                    linears = [x for x in m.modules() if isinstance(x, nn.Linear)]
                    outs = linears[-1:] if linears else [m]
                    break
        if not outs:
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
            outs = linears[-1:]
        if not lstms and not outs:
            raise TrainError(f"clip='graves' found neither LSTM nor output layers in {type(model).__name__}; use clip='norm'")
        self.output_modules, self.lstm_modules = outs, lstms
        names = {id(m): n for n, m in model.named_modules()}
        for kind, mods, fn in (("output", outs, lambda: self.output / self.scale), ("lstm", lstms, lambda: self.lstm / self.scale)):
            for m in mods:
                key = f"{kind}:{names.get(id(m), type(m).__name__)}"
                self._fired[key] = 0
                self._handles.append(m.register_forward_hook(self._hook(key, fn)))

    def _hook(self, key: str, limit_fn):
        def hook(module, inputs, output):
            if module.training and torch.is_grad_enabled():
                self._fired[key] += 1
                _clamp_tensors(output, limit_fn)

        return hook

    def before_forward(self) -> None:
        for k in self._fired:
            self._fired[k] = 0

    def before_backward(self, scale: float) -> None:
        self.scale = float(scale)
        if self.native:
            self.model.set_gradient_clipping(output=self.output / self.scale, lstm=self.lstm / self.scale)

    def unreached(self) -> list[str]:
        """Targets whose hooks did not fire in the last forward pass (so nothing was clipped there)."""
        return [k for k, n in self._fired.items() if n == 0]

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        if self.native:
            self.model.set_gradient_clipping(output=None, lstm=None)
