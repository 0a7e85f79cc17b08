"""Compares training memory of RevCol with the reversible backward (save_memory=True) against plain autograd.

Run: .venv/bin/python benchmarks/revcol_memory.py   (revcol_tiny, 256x256, batch 2; prints both and the ratio)

On CUDA it reports the peak allocated memory of one forward+backward. Without a GPU it counts the bytes of
the tensors autograd keeps for backward (``saved_tensors_hooks``; parameters excluded since both modes keep
them anyway), both right after forward and at their peak during backward; a tensor saved twice (same storage)
counts once. The reversible mode's per-level RNG snapshots live on the autograd node and are listed apart.
"""

from __future__ import annotations

import copy
import importlib.util
import sys

import torch

from yamlforge.resources import SPECS_DIR

BATCH, SIDE = 2, 256


def load_revcol():
    spec = importlib.util.spec_from_file_location("revcol", SPECS_DIR / "revcol.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class SavedBytes:
    """Live bytes of the storages autograd holds for backward; a storage leaves when its last holder is freed."""

    def __init__(self, exclude: set[int]):
        self.exclude = exclude
        self.holders: dict[int, list[int]] = {}  # storage pointer -> [bytes, number of saved references]
        self.live = self.peak = 0

    def pack(self, tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in self.exclude or tensor.device.type == "meta":
            return tensor
        entry = self.holders.setdefault(key, [storage.nbytes(), 0])
        if entry[1] == 0:
            self.live += entry[0]
            self.peak = max(self.peak, self.live)
        entry[1] += 1
        return _Held(self, key, tensor)

    @staticmethod
    def unpack(held):
        return held.tensor if isinstance(held, _Held) else held

    def release(self, key: int) -> None:
        entry = self.holders[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]


class _Held:
    """What autograd stores instead of the tensor; autograd dropping it is how we learn the tensor was freed."""

    def __init__(self, counter: SavedBytes, key: int, tensor: torch.Tensor):
        self.counter, self.key, self.tensor = counter, key, tensor

    def __del__(self):
        self.counter.release(self.key)


def measure_cpu(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(bytes saved for backward when forward ends, peak saved bytes during forward + backward)."""
    counter = SavedBytes({p.untyped_storage().data_ptr() for p in model.parameters()})
    with torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack):
        outs = model(x)
        after_forward = counter.live
        sum(o.float().square().mean() for o in outs).backward()
    return after_forward, counter.peak


def measure_cuda(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, int]:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    outs = model(x)
    after_forward = torch.cuda.memory_allocated() - base
    sum(o.float().square().mean() for o in outs).backward()
    torch.cuda.synchronize()
    return after_forward, torch.cuda.max_memory_allocated() - base


def mib(n: int) -> str:
    return f"{n / 2**20:8.1f} MiB"


def main() -> int:
    revcol = load_revcol()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    plain = revcol.revcol_tiny(save_memory=False).to(device).train()
    reversible = copy.deepcopy(plain)
    reversible.save_memory = True
    x = torch.randn(BATCH, 3, SIDE, SIDE, device=device)
    measure = measure_cuda if device == "cuda" else measure_cpu
    how = "peak allocated (CUDA)" if device == "cuda" else "bytes saved for backward (CPU)"
    print(f"revcol_tiny, {BATCH}x3x{SIDE}x{SIDE}, training step, {how}")
    results = {}
    for name, model in (("plain", plain), ("reversible", reversible)):
        results[name] = measure(model, x)
        print(f"  {name:<10}  after forward {mib(results[name][0])}   peak {mib(results[name][1])}")
    if device == "cpu":
        levels = len(reversible.columns) * 4
        rng_bytes = levels * torch.get_rng_state().numel()
        print(f"  (reversible also keeps {levels} RNG snapshots: {rng_bytes / 2**10:.0f} KiB)")
    print(
        f"reversible / plain: after forward {results['reversible'][0] / results['plain'][0]:.3f}, "
        f"peak {results['reversible'][1] / results['plain'][1]:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
