"""RevCol backbone (Reversible Column Networks, Cai et al., ICLR 2023): a clean pure-torch implementation.

The network is a stem followed by ``num_columns`` columns. Each column has four levels (strides 4, 8, 16, 32);
level ``i`` of column ``k`` computes

    c[k][i] = alpha[k][i] * c[k-1][i] + F[k][i](c[k][i-1], c[k-1][i+1])

where ``F`` is a *fusion* (a 2x2 stride-2 conv + LayerNorm from the finer level of this column -- the stem
output for level 0, which needs no down-sampling -- plus, from the second column on, a channels-last Linear +
LayerNorm + nearest x2 upsample of the coarser level of the previous column) followed by ConvNeXt blocks.
The first column starts from ``c[-1][*] = 0``.

Because ``alpha`` is non-zero, a column is invertible: ``c[k-1][i] = (c[k][i] - F[k][i](...)) / alpha[k][i]``,
taken from level 3 down to level 0. With ``save_memory=True`` training therefore keeps only the stem output
and the last column's four maps; backward rebuilds every earlier column from them and recomputes each level's
activations one level at a time (RNG and autocast state replayed), so activation memory no longer grows with
the number of columns and blocks.

Parameter counts (stem + columns; the reference design's numbers, asserted by the tests). With channels C_i and
blocks L_i per level, dw kernel k = 3:

    stem          = 3*16*C0 + C0 (conv) + 2*C0 (LayerNorm)                      = 51*C0
    ConvNeXt blk  = C*k*k + C (dw) + 2C (LN) + 4C*C + 4C + 4C*C + C + C (gamma) = 8C^2 + 18C
    down (i=1..3) = 4*C_{i-1}*C_i + C_i + 2*C_i                                 = 4*C_{i-1}*C_i + 3*C_i
    up   (i=0..2) = C_{i+1}*C_i + C_i + 2*C_i                                   = C_{i+1}*C_i + 3*C_i
    alpha         = sum C_i                    (kept in the first column too: it multiplies c[-1] = 0)
    column        = sum_i L_i*(8C_i^2+18C_i) + sum downs + sum ups + sum alphas  (first column: no ups)

    tiny   [64,128,256,512]  [2,2,4,2]: blocks 6,662,912 + downs 690,816 + ups 173,376 + alpha 960
           = 7,528,064 per column; 4 columns - 173,376 (first has no up) + stem 3,264 = 29,942,144
    small  same, 8 columns: 8*7,528,064 - 173,376 + 3,264                         = 60,054,400
           (small - tiny = 4 * 7,528,064: the per-column count above, and k=3 is the only kernel giving it)
    base   [72,144,288,576] [1,1,3,2]: 8,640,864 per column; 16*8,640,864 - 219,240 + 3,672 = 138,038,256
    large  [128,256,512,1024] [1,2,6,2], 8 columns                                = 272,068,352
    xlarge [224,448,896,1792] [1,2,6,2], 8 columns                                = 832,010,816

Input sides that are not multiples of 32 are zero-padded on the right/bottom up to the next multiple of 32
before the stem, so the four outputs are the maps of the padded image (``ceil(H/32)*32 / stride`` rows).
Detectors feed stride-32 multiples anyway (letterboxing); padding keeps odd sizes from crashing the
upsample-and-add fusion.

This file is standalone (torch + stdlib only): yamlforge copies it verbatim into the target checkout.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ("RevCol", "revcol_base", "revcol_custom", "revcol_large", "revcol_small", "revcol_tiny", "revcol_xlarge")

ALPHA_MIN = 1e-3  # |alpha| floor: the inverse divides by alpha, so it must stay away from zero
MAX_STRIDE = 32


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of an NCHW map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class DropPath(nn.Module):
    """Stochastic depth: drops a whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class ConvNeXtBlock(nn.Module):
    """Depthwise conv, channels-last LayerNorm, MLP with 4x expansion, layer scale, residual."""

    def __init__(self, dim: int, kernel_size: int = 3, drop_path: float = 0.0, layer_scale: float = 1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + self.drop_path(y.permute(0, 3, 1, 2))


class UpFusion(nn.Module):
    """Coarser level of the previous column -> this level: channels-last Linear + LayerNorm, then nearest x2.

    The channel change runs before the upsample so the Linear sees 4x fewer positions.
    """

    def __init__(self, c_coarse: int, c_out: int):
        super().__init__()
        self.proj = nn.Linear(c_coarse, c_out)
        self.norm = nn.LayerNorm(c_out, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.proj(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return F.interpolate(y, scale_factor=2.0, mode="nearest")


class Level(nn.Module):
    """One level of one column: ``alpha * c_prev + blocks(down(finer) + up(coarser_prev))``."""

    def __init__(
        self,
        index: int,
        channels: tuple[int, ...],
        depth: int,
        kernel_size: int,
        first_column: bool,
        drop_paths: list[float],
    ):
        super().__init__()
        c = channels[index]
        # Level 0 takes the stem output as it is: the stem already works at stride 4 with C0 channels.
        self.down = (
            nn.Sequential(nn.Conv2d(channels[index - 1], c, 2, stride=2), LayerNorm2d(c, eps=1e-6))
            if index > 0
            else nn.Identity()
        )
        # The first column has no previous column to read the coarser level from; level 3 has no coarser level.
        self.up = UpFusion(channels[index + 1], c) if not first_column and index < 3 else None
        self.blocks = nn.Sequential(*(ConvNeXtBlock(c, kernel_size, p) for p in drop_paths[:depth]))
        self.alpha = nn.Parameter(torch.full((1, c, 1, 1), 0.5))

    def residual(self, finer: torch.Tensor, coarser_prev: torch.Tensor | None) -> torch.Tensor:
        """``F``: the part of the level that the reversible inverse subtracts."""
        x = self.down(finer)
        if self.up is not None:
            x = x + self.up(coarser_prev)
        return self.blocks(x)

    def merge(self, c_prev: torch.Tensor | float, y: torch.Tensor) -> torch.Tensor:
        # c_prev is 0 in the first column; alpha * 0 keeps alpha in the graph so DDP without
        # find_unused_parameters (Ultralytics < 8.2) still sees a gradient for it.
        return self.alpha * c_prev + y

    def forward(self, c_prev, finer, coarser_prev):
        return self.merge(c_prev, self.residual(finer, coarser_prev))

    @torch.no_grad()
    def clamp_alpha(self) -> None:
        """Keep ``|alpha| >= ALPHA_MIN`` with its sign (0 counts as positive)."""
        a = self.alpha.data  # .data: a parameter edit, not part of the graph, no version bump
        sign = 1 - 2 * (a < 0).to(a.dtype)
        a.copy_(torch.where(a.abs() < ALPHA_MIN, sign * ALPHA_MIN, a))


class Column(nn.Module):
    """Four levels; maps the previous column's ``[c0, c1, c2, c3]`` (or zeros) to this column's."""

    def __init__(self, channels, layers, kernel_size, first_column, drop_paths):
        super().__init__()
        starts = [sum(layers[:i]) for i in range(4)]
        self.levels = nn.ModuleList(
            Level(i, channels, layers[i], kernel_size, first_column, drop_paths[starts[i] :]) for i in range(4)
        )
        self.first_column = first_column

    def forward(self, x: torch.Tensor, prev: list[torch.Tensor] | None, rng_states: list | None = None):
        """``rng_states``, if given, collects the RNG state before each level (for the reversible backward)."""
        prev = prev if prev is not None else [0.0] * 4
        out: list[torch.Tensor] = []
        for i, level in enumerate(self.levels):
            if rng_states is not None:
                rng_states.append(_rng_state(x.device if x.is_cuda else None))
            finer = x if i == 0 else out[i - 1]
            coarser_prev = prev[i + 1] if i < 3 and not self.first_column else None
            out.append(level(prev[i], finer, coarser_prev))
        return out


def _autocast_state(device_type: str) -> tuple[bool, torch.dtype]:
    try:
        return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)
    except (TypeError, AttributeError):  # torch < 2.4 only has the per-device functions
        if device_type == "cuda":
            return torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
        return False, torch.float32


class _ReversibleColumns(torch.autograd.Function):
    """All columns in one autograd node that saves only ``x`` and the last column's outputs.

    ``forward(ctx, net, x, *params)``: ``params`` are the trainable column parameters, passed so that
    autograd routes their gradients through this node. Backward walks the columns last to first; per
    level (3 down to 0) it recomputes ``F`` with grad enabled, inverts ``c_prev = (c - F) / alpha``
    and takes the gradients of ``alpha * c_prev + F`` -- so at most one level's activations are alive.
    """

    @staticmethod
    def forward(ctx, net: RevCol, x: torch.Tensor, *params: torch.Tensor):
        ctx.net = net
        ctx.device_type = x.device.type
        ctx.cuda_device = x.device if x.is_cuda else None
        ctx.autocast = _autocast_state(ctx.device_type)
        # One RNG snapshot per (column, level): backward recomputes levels in reverse order, and
        # drop path must draw the same masks it drew here.
        ctx.rng = []
        cs = None
        for column in net.columns:
            ctx.rng.append([])
            cs = column(x, cs, ctx.rng[-1])
        ctx.save_for_backward(x, *cs)
        return tuple(cs)

    @staticmethod
    @torch.autograd.function.once_differentiable  # the recomputation is not itself differentiated
    def backward(ctx, *grad_outputs):
        net: RevCol = ctx.net
        x, *cs = ctx.saved_tensors
        param_index = {id(p): j for j, p in enumerate(net.trainable_column_params())}
        param_grads: list[torch.Tensor | None] = [None] * len(param_index)
        grad_x = torch.zeros_like(x) if ctx.needs_input_grad[1] else None
        grads = [g if g is not None else torch.zeros_like(c) for g, c in zip(grad_outputs, cs)]
        cs = [c.detach() for c in cs]
        device_type, (autocast_on, autocast_dtype) = ctx.device_type, ctx.autocast

        for k in reversed(range(len(net.columns))):
            column = net.columns[k]
            prev: list[torch.Tensor | float] = [0.0] * 4
            prev_grads: list[torch.Tensor | None] = [None] * 4
            for i in reversed(range(4)):
                level = column.levels[i]
                finer = (x if i == 0 else cs[i - 1]).detach().requires_grad_()
                coarser = prev[i + 1] if i < 3 and not column.first_column else None
                if coarser is not None:
                    coarser = coarser.detach().requires_grad_()
                # fork_rng: replaying the forward's RNG state must not disturb the caller's stream
                with torch.random.fork_rng(devices=[ctx.cuda_device] if ctx.cuda_device is not None else []):
                    _set_rng_state(ctx.rng[k][i], ctx.cuda_device)
                    autocast = (
                        torch.autocast(device_type, dtype=autocast_dtype) if autocast_on else contextlib.nullcontext()
                    )
                    with torch.enable_grad(), autocast:
                        y = level.residual(finer, coarser)
                        if column.first_column:
                            c_prev = 0.0
                        else:
                            with torch.no_grad():
                                c_prev = ((cs[i] - y) / level.alpha).to(cs[i].dtype)
                            c_prev.requires_grad_()
                        out = level.merge(c_prev, y)
                inputs = [finer] + ([coarser] if coarser is not None else [])
                inputs += [c_prev] if not column.first_column else []
                own = [p for p in level.parameters() if p.requires_grad]
                got = torch.autograd.grad(out, inputs + own, grads[i], allow_unused=True)
                got_inputs, got_params = got[: len(inputs)], got[len(inputs) :]
                # finer input: the level below in this column (or the stem output for level 0)
                if i == 0:
                    if grad_x is not None and got_inputs[0] is not None:
                        grad_x += got_inputs[0]
                else:
                    grads[i - 1] = grads[i - 1] + got_inputs[0]
                if coarser is not None:
                    prev_grads[i + 1] = _add(prev_grads[i + 1], got_inputs[1])
                if not column.first_column:
                    prev_grads[i] = _add(prev_grads[i], got_inputs[-1])
                    prev[i] = c_prev.detach()
                for p, g in zip(own, got_params):
                    j = param_index[id(p)]
                    param_grads[j] = _add(param_grads[j], g)
                del y, out, got
            if k:  # hand the rebuilt previous column and its gradients to the next iteration
                cs = prev
                grads = [g if g is not None else torch.zeros_like(c) for g, c in zip(prev_grads, cs)]
        return (None, grad_x, *param_grads)


def _add(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


def _rng_state(cuda_device):
    cpu = torch.get_rng_state()
    return cpu, (torch.cuda.get_rng_state(cuda_device) if cuda_device is not None else None)


def _set_rng_state(state, cuda_device) -> None:
    cpu, cuda = state
    torch.set_rng_state(cpu)
    if cuda_device is not None:
        torch.cuda.set_rng_state(cuda, cuda_device)


class RevCol(nn.Module):
    """Reversible Column Network backbone; ``forward(x)`` returns maps at strides 4, 8, 16, 32.

    Args:
        channels: the four level widths (``width_list``).
        layers: ConvNeXt blocks per level.
        num_columns: number of columns; outputs come from the last one.
        kernel_size: depthwise kernel of the ConvNeXt blocks (3, as in RevCol's detection configs).
        save_memory: train through the reversible autograd node (activations recomputed in backward)
            instead of plain autograd. Inference (no grad) always takes the plain path.
        drop_path: stochastic-depth rate, linear from 0 over the blocks of a column (same in every column).
        in_channels: image channels.

    Inputs whose sides are not multiples of 32 are zero-padded on the right/bottom to the next multiple.
    While training, ``forward`` first clamps every ``alpha`` to ``|alpha| >= 1e-3`` (sign kept).
    The reversible backward rebuilds earlier columns by division by alpha, so rounding grows by about
    1/|alpha| per column: exact in float64, ~1e-5 relative in float32, ~1e-2 under bfloat16/float16
    autocast (replayed in backward) -- use ``save_memory=False`` when that matters. RNG replay covers
    the CPU and CUDA generators.
    """

    def __init__(
        self,
        channels=(64, 128, 256, 512),
        layers=(2, 2, 4, 2),
        num_columns: int = 4,
        kernel_size: int = 3,
        save_memory: bool = True,
        drop_path: float = 0.0,
        in_channels: int = 3,
    ):
        super().__init__()
        channels, layers = tuple(int(c) for c in channels), tuple(int(n) for n in layers)
        if len(channels) != 4 or len(layers) != 4:
            raise ValueError(f"RevCol needs 4 channels and 4 layer counts, got {list(channels)} and {list(layers)}")
        _check_yaml_args("RevCol", in_channels, save_memory, drop_path)
        if num_columns < 1:
            raise ValueError(f"RevCol: num_columns must be at least 1, got {num_columns}")
        self.width_list = list(channels)
        self.save_memory = bool(save_memory)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels[0], 4, stride=4), LayerNorm2d(channels[0], eps=1e-6))
        total = sum(layers)
        drop_paths = [drop_path * j / (total - 1) if total > 1 else 0.0 for j in range(total)]
        self.columns = nn.ModuleList(
            Column(channels, layers, kernel_size, k == 0, drop_paths) for k in range(num_columns)
        )

    def trainable_column_params(self) -> list[nn.Parameter]:
        return [p for p in self.columns.parameters() if p.requires_grad]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % MAX_STRIDE, (-w) % MAX_STRIDE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        if self.training:
            for column in self.columns:
                for level in column.levels:
                    level.clamp_alpha()
        x = self.stem(x)
        params = self.trainable_column_params()
        reversible = (
            self.save_memory
            and torch.is_grad_enabled()
            and (x.requires_grad or bool(params))
            and not torch.jit.is_tracing()
            and not torch.jit.is_scripting()
        )
        if reversible:
            return list(_ReversibleColumns.apply(self, x, *params))
        cs = None
        for column in self.columns:
            cs = column(x, cs)
        return cs


def _check_yaml_args(name: str, c1, save_memory, drop_path) -> None:
    """One-line ValueError naming the bad argument: parse_model passes YAML args positionally, and
    strings it could not evaluate arrive as-is."""
    checks = (
        ("c1", c1, isinstance(c1, int) and not isinstance(c1, bool) and c1 > 0),
        ("save_memory", save_memory, isinstance(save_memory, (bool, int))),
        ("drop_path", drop_path, isinstance(drop_path, (int, float)) and not isinstance(drop_path, bool)
         and 0.0 <= drop_path < 1.0),
    )
    for arg, value, ok in checks:
        if not ok:
            raise ValueError(
                f"{name}: bad {arg} {value!r}; YAML args are [save_memory (true/false), drop_path (0 <= p < 1)] "
                f"after the input channels parse_model fills in, e.g. [-1, 1, {name}, [True, 0.1]]"
            )


class _RevColVariant(RevCol):
    """A named RevCol configuration usable as a model-YAML layer.

    Variants are classes, not factory functions, because Ultralytics' restricted loader
    (``ULTRALYTICS_SAFE_LOAD=1``) accepts only ``nn.Module`` subclasses as layer names, and a checkpoint
    must unpickle them by class name.
    """

    config: tuple = ()  # (channels, layers, num_columns)

    def __init__(self, c1: int = 3, save_memory: bool = True, drop_path: float = 0.0):
        # c1 first: yamlforge's backbone branch builds backbones as cls(ch[f], *yaml_args), like the target's layers
        _check_yaml_args(type(self).__name__, c1, save_memory, drop_path)
        channels, layers, num_columns = self.config
        super().__init__(channels, layers, num_columns, 3, bool(save_memory), float(drop_path), c1)


class revcol_tiny(_RevColVariant):
    """RevCol-T: channels [64, 128, 256, 512], blocks [2, 2, 4, 2], 4 columns (29.9M parameters)."""

    config = ((64, 128, 256, 512), (2, 2, 4, 2), 4)


class revcol_small(_RevColVariant):
    """RevCol-S: channels [64, 128, 256, 512], blocks [2, 2, 4, 2], 8 columns (60.1M parameters)."""

    config = ((64, 128, 256, 512), (2, 2, 4, 2), 8)


class revcol_base(_RevColVariant):
    """RevCol-B: channels [72, 144, 288, 576], blocks [1, 1, 3, 2], 16 columns (138.0M parameters)."""

    config = ((72, 144, 288, 576), (1, 1, 3, 2), 16)


class revcol_large(_RevColVariant):
    """RevCol-L: channels [128, 256, 512, 1024], blocks [1, 2, 6, 2], 8 columns (272.1M parameters)."""

    config = ((128, 256, 512, 1024), (1, 2, 6, 2), 8)


class revcol_xlarge(_RevColVariant):
    """RevCol-XL: channels [224, 448, 896, 1792], blocks [1, 2, 6, 2], 8 columns (832.0M parameters)."""

    config = ((224, 448, 896, 1792), (1, 2, 6, 2), 8)


class revcol_custom(RevCol):
    """Any RevCol configuration as a model-YAML layer, e.g. the one of an official checkpoint:
    ``[-1, 1, revcol_custom, [True, 0.0, [32, 64, 96, 128], [1, 2, 2, 1], 3, 3]]``.

    Its YAML args are the variants' two, then channels, blocks per level, columns and kernel size
    (defaults: RevCol-T's layout).
    """

    def __init__(self, c1: int = 3, save_memory: bool = True, drop_path: float = 0.0, channels=(64, 128, 256, 512),
                 layers=(2, 2, 4, 2), num_columns: int = 4, kernel_size: int = 3):
        _check_yaml_args("revcol_custom", c1, save_memory, drop_path)
        super().__init__(channels, layers, num_columns, kernel_size, bool(save_memory), float(drop_path), c1)
