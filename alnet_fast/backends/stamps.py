"""When is a cached, derived form of a weight stale? One rule for every cache (packed weights, native plans).

A tensor's stamp is its (version counter, data pointer): an in-place update (``p.mul_(2)``,
``p.copy_(...)``, an optimizer step) bumps the version, and ``p.data = other`` keeps the version but
moves the pointer. Inference tensors have no version counter, so nothing derived from them is cached.
"""

from __future__ import annotations

import weakref
from typing import Callable

import torch


def stamp(*tensors: torch.Tensor) -> tuple[tuple[int, int], ...]:
    """(version, data pointer) of each tensor; compare two stamps to tell whether any tensor changed."""
    return tuple((t._version, t.data_ptr()) for t in tensors)


def trackable(*tensors: torch.Tensor) -> bool:
    """Whether changes to these tensors can be seen (no inference tensors among them)."""
    return not any(t.is_inference() for t in tensors)


class PackCache:
    """Packed forms of (weight, bias) pairs, one per layout, repacked once either tensor is stale.

    Entries are keyed by the weight's identity and dropped when the weight is garbage-collected.
    """

    def __init__(self):
        self._entries: dict[tuple[int, str], tuple] = {}

    def get(self, weight: torch.Tensor, bias: torch.Tensor, layout: str, pack: Callable[[], object]):
        if not trackable(weight, bias):
            return pack()
        key = (id(weight), layout)
        current = stamp(weight, bias)
        hit = self._entries.get(key)
        if hit is not None and hit[0]() is weight and hit[1]() is bias and hit[2] == current:
            return hit[3]
        packed = pack()
        self._entries[key] = (weakref.ref(weight, lambda _: self._entries.pop(key, None)), weakref.ref(bias),
                              current, packed)
        return packed
