"""RevCol backbone: reference parameter counts, output maps, reversible gradients, alpha floor, padding, spec."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch

from yamlforge.resources import SPECS_DIR
from yamlforge.specs import load_spec

SPEC = load_spec(SPECS_DIR / "revcol.yaml", bundled=True)


def _load_module():
    spec = importlib.util.spec_from_file_location("revcol_under_test", SPEC.source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


revcol = _load_module()

REFERENCE_COUNTS = [
    ("revcol_tiny", 29_942_144),
    ("revcol_small", 60_054_400),
    ("revcol_base", 138_038_256),
    ("revcol_large", 272_068_352),
    ("revcol_xlarge", 832_010_816),
]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return revcol.revcol_tiny().eval()


def _liven(model: torch.nn.Module, seed: int = 1) -> None:
    """Move layer scales and alphas off their inits, so blocks matter and every alpha differs from 0.5."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.copy_(torch.rand(p.shape, generator=generator) * 0.6 + 0.2)
            elif name.endswith("alpha"):
                p.copy_(torch.rand(p.shape, generator=generator) * 0.9 + 0.3)


def _train_step(model, x, seed=123):
    """One loss.backward() from a fixed RNG seed; returns outputs, input grad and every parameter grad."""
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    torch.manual_seed(seed)
    outs = model(x)
    # position-dependent weights: a plain sum would give every output element the same gradient
    loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() for o in outs)
    loss.backward()
    return outs, x.grad, {n: p.grad for n, p in model.named_parameters()}


def _reversible_twin(plain):
    twin = copy.deepcopy(plain)
    twin.save_memory = True
    return twin


@pytest.mark.parametrize(("factory", "expected"), REFERENCE_COUNTS, ids=[name for name, _ in REFERENCE_COUNTS])
def test_parameter_count_matches_reference(factory, expected):
    with torch.device("meta"):
        model = getattr(revcol, factory)()
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize("size", [(64, 64), (96, 64)], ids=["64x64", "96x64"])
def test_outputs_are_width_list_channels_at_strides_4_8_16_32(tiny, size):
    h, w = size
    with torch.no_grad():
        outs = tiny(torch.randn(1, 3, h, w))
    assert [o.shape[1] for o in outs] == tiny.width_list == [64, 128, 256, 512]
    assert [tuple(o.shape[2:]) for o in outs] == [(h // s, w // s) for s in SPEC.output_strides]


def test_reversible_gradients_match_plain_on_revcol_tiny():
    torch.manual_seed(0)
    plain = revcol.revcol_tiny(save_memory=False, drop_path=0.2).train()
    _liven(plain)
    reversible = _reversible_twin(plain)
    x = torch.randn(2, 3, 64, 64)
    outs_p, gx_p, grads_p = _train_step(plain, x)
    outs_r, gx_r, grads_r = _train_step(reversible, x)
    for a, b in zip(outs_p, outs_r):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    # float32 inverse c_prev = (c - F) / alpha rounds a little; compare against each tensor's own scale
    torch.testing.assert_close(gx_r, gx_p, rtol=0, atol=1e-4 * gx_p.abs().max().item())
    assert grads_p.keys() == grads_r.keys()
    for name, g in grads_p.items():
        assert g is not None and grads_r[name] is not None, name
        torch.testing.assert_close(grads_r[name], g, rtol=0, atol=1e-4 * g.abs().max().item(), msg=name)


@pytest.mark.parametrize("frozen_stem", [False, True], ids=["trainable-stem", "frozen-stem"])
def test_reversible_gradients_are_exact_in_float64_with_drop_path(frozen_stem):
    torch.manual_seed(0)
    plain = revcol.RevCol((8, 16, 24, 32), (1, 2, 2, 1), num_columns=3, save_memory=False, drop_path=0.5)
    plain = plain.double().train()
    _liven(plain, seed=2)
    plain.stem.requires_grad_(not frozen_stem)
    reversible = _reversible_twin(plain)
    x = torch.randn(3, 3, 64, 32, dtype=torch.float64)
    _, gx_p, grads_p = _train_step(plain, x)
    _, gx_r, grads_r = _train_step(reversible, x)
    torch.testing.assert_close(gx_r, gx_p, rtol=1e-9, atol=1e-10)
    for name, g in grads_p.items():
        if g is None:
            assert frozen_stem and name.startswith("stem.") and grads_r[name] is None
            continue
        torch.testing.assert_close(grads_r[name], g, rtol=1e-9, atol=1e-10, msg=name)


def test_reversible_training_keeps_no_column_activations():
    torch.manual_seed(0)
    plain = revcol.RevCol((8, 16, 24, 32), (1, 2, 2, 1), num_columns=3, save_memory=False).train()
    reversible = _reversible_twin(plain)
    x = torch.randn(1, 3, 64, 64)
    params = {p.untyped_storage().data_ptr() for m in (plain, reversible) for p in m.parameters()}

    def saved_bytes(model):
        storages = {}

        def pack(t):
            if t.untyped_storage().data_ptr() not in params:
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
        return sum(storages.values())

    # what may stay: the image and a few stem-sized maps (stem conv + LayerNorm), and the last column's outputs
    stem_map = 8 * 16 * 16
    outputs = sum(c * (64 // s) ** 2 for c, s in zip((8, 16, 24, 32), (4, 8, 16, 32)))
    assert saved_bytes(reversible) <= 4 * (x.numel() + 4 * stem_map + outputs)
    assert saved_bytes(plain) > 5 * saved_bytes(reversible)


def test_training_forward_keeps_alpha_magnitude_at_least_1e_3_with_sign():
    model = revcol.RevCol((8, 16, 24, 32), (1, 1, 1, 1), num_columns=2).train()
    alpha = model.columns[1].levels[0].alpha
    with torch.no_grad():
        alpha.view(-1).copy_(torch.tensor([1e-5, -1e-6, 0.0, -2e-4, 0.7, -0.2, 1e-3, -1e-3]))
    out = model(torch.randn(1, 3, 32, 32))
    sum(o.sum() for o in out).backward()
    assert alpha.view(-1).tolist() == pytest.approx([1e-3, -1e-3, 1e-3, -1e-3, 0.7, -0.2, 1e-3, -1e-3])
    assert all(level.alpha.abs().min() >= 1e-3 for column in model.columns for level in column.levels)


@pytest.mark.parametrize("size", [(70, 50), (33, 31)], ids=["70x50", "33x31"])
def test_input_not_multiple_of_32_is_zero_padded_right_and_bottom(tiny, size):
    h, w = size
    x = torch.randn(1, 3, h, w)
    padded = torch.nn.functional.pad(x, (0, -w % 32, 0, -h % 32))
    with torch.no_grad():
        outs, expected = tiny(x), tiny(padded)
    padded_h, padded_w = padded.shape[2:]
    assert padded_h % 32 == 0 and padded_w % 32 == 0 and padded_h - h < 32 and padded_w - w < 32
    assert [tuple(o.shape[2:]) for o in outs] == [(padded_h // s, padded_w // s) for s in (4, 8, 16, 32)]
    for o, e in zip(outs, expected):
        torch.testing.assert_close(o, e)


@pytest.mark.parametrize(
    ("args", "save_memory", "drop_rates"),
    [
        ((), True, 0.0),
        ((False,), False, 0.0),
        ((True, 0.3), True, 0.3),
        ((0, 0.1), False, 0.1),
    ],
    ids=["no-args", "plain", "reversible-drop-path", "int-flag"],
)
def test_factory_takes_yaml_args_positionally(args, save_memory, drop_rates):
    with torch.device("meta"):
        model = revcol.revcol_tiny(3, *args)  # parse_model passes the input channels first
    assert model.save_memory is save_memory
    assert max(m.p for m in model.modules() if isinstance(m, revcol.DropPath)) == pytest.approx(drop_rates)


@pytest.mark.parametrize(
    ("args", "bad"),
    [
        ((3, "yes"), "save_memory"),
        ((3, True, 1.5), "drop_path"),
        ((3, True, "0.1"), "drop_path"),
        ((0, True, 0.0), "c1"),
    ],
    ids=["string-flag", "rate-above-1", "string-rate", "zero-channels"],
)
def test_factory_rejects_bad_yaml_args_naming_the_arg(args, bad):
    with pytest.raises(ValueError, match=rf"revcol_small: bad {bad} .*YAML args are \[save_memory"):
        revcol.revcol_small(*args)


def test_inference_is_the_same_in_both_modes(tiny):
    plain = copy.deepcopy(tiny)
    plain.save_memory = False
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(tiny(x), plain(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_spec_is_a_backbone_whose_exports_build_from_input_channels_and_yaml_args():
    assert SPEC.role == "backbone" and SPEC.channels == "backbone" and SPEC.output_strides == (4, 8, 16, 32)
    assert set(SPEC.exports) <= set(revcol.__all__)
    assert [a.name for a in SPEC.args] == ["save_memory", "drop_path"]
    for name in SPEC.exports:
        with torch.device("meta"):
            model = getattr(revcol, name)(3, *(a.default for a in SPEC.args))
        assert isinstance(model, revcol.RevCol) and isinstance(model, torch.nn.Module)
        assert len(model.width_list) == 4
