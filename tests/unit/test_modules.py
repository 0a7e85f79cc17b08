"""The bundled layer implementations: exact parameter counts, shapes, odd sizes, re-parameterisation, gradients."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from yamlforge.resources import SPECS_DIR


def load_implementation(stem: str):
    """Import ``module_specs/<stem>.py`` by path, as the standalone file yamlforge copies into a checkout."""
    spec = importlib.util.spec_from_file_location(f"yamlforge_bundled_{stem}", SPECS_DIR / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shsa = load_implementation("shsa")
biformer = load_implementation("biformer")
riformer = load_implementation("riformer")
bhvit = load_implementation("bhvit")


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


PARAM_COUNTS = [
    ("shsa-256-16-64", lambda: shsa.SHSA(256, 16, 64), 72_512),
    ("shsa-128-16-32", lambda: shsa.SHSA(128, 16, 32), 18_880),
    ("shsa-128-default-pdim", lambda: shsa.SHSA(128), 18_880),
    ("bra-256", lambda: biformer.BiLevelRoutingAttention(256), 265_728),
    ("bra-512", lambda: biformer.BiLevelRoutingAttention(512), 1_055_744),
    ("riformer-64-64", lambda: riformer.RIFormerBlock(64, 64), 33_600),
    ("riformer-64-64-ratio4", lambda: riformer.RIFormerBlock(64, 64, 4), 33_600),
    # the projection adds c1*c2 + c2; the block itself is the c2 = 64 block above
    ("riformer-32-64", lambda: riformer.RIFormerBlock(32, 64), 33_600 + 32 * 64 + 64),
    ("token-mixer-64", lambda: bhvit.token_mixer(64), 28_608),
]


@pytest.mark.parametrize("build,expected", [c[1:] for c in PARAM_COUNTS], ids=[c[0] for c in PARAM_COUNTS])
def test_parameter_count_is_exact(build, expected):
    assert n_params(build()) == expected


# (id, constructor, input shape, output channels); small maps keep the suite in seconds on a CPU
MODULES = [
    ("shsa", lambda: shsa.SHSA(64), (2, 64, 12, 10), 64),
    ("shsa-full-pdim", lambda: shsa.SHSA(32, 8, 32), (2, 32, 7, 9), 32),
    ("bra", lambda: biformer.BiLevelRoutingAttention(64, num_heads=8), (2, 64, 14, 14), 64),
    ("bra-odd", lambda: biformer.BiLevelRoutingAttention(32, num_heads=4, n_win=3, topk=2), (2, 32, 13, 17), 32),
    ("riformer-keep", lambda: riformer.RIFormerBlock(32, 32), (2, 32, 9, 11), 32),
    ("riformer-project", lambda: riformer.RIFormerBlock(16, 48, 2), (2, 16, 9, 11), 48),
    ("token-mixer", lambda: bhvit.token_mixer(32), (2, 32, 9, 11), 32),
]
MODULE_IDS = [m[0] for m in MODULES]


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("build,shape,c_out", [m[1:] for m in MODULES], ids=MODULE_IDS)
def test_forward_keeps_resolution(build, shape, c_out, mode):
    torch.manual_seed(0)
    module = build().train(mode == "train")
    out = module(torch.randn(shape))
    n, _, h, w = shape
    assert out.shape == (n, c_out, h, w)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("build,shape,c_out", [m[1:] for m in MODULES], ids=MODULE_IDS)
def test_backward_reaches_every_parameter_with_finite_grads(build, shape, c_out):
    torch.manual_seed(0)
    module = build().train()
    # Zero-initialised pieces (SHSA's last BN weight, RIFormer's identity affine) would hide broken paths.
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(shape, requires_grad=True)
    module(x).square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in module.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_shsa_defaults_and_zero_initialised_projection():
    layer = shsa.SHSA(64)
    assert (layer.pdim, layer.qk_dim) == (16, 16)
    assert torch.equal(layer.proj[1].bn.weight, torch.zeros(64))
    layer.eval()
    # eval BN at init: weight 0, bias 0 -> the layer starts as a zero residual branch
    assert torch.equal(layer(torch.randn(1, 64, 5, 5)), torch.zeros(1, 64, 5, 5))


def test_shsa_bypass_channels_skip_attention():
    torch.manual_seed(0)
    layer = shsa.SHSA(32, 8, 8).eval()
    x = torch.randn(1, 32, 6, 6)
    before_proj = {}
    layer.proj.register_forward_hook(lambda mod, inp, out: before_proj.setdefault("x", inp[0]))
    layer(x)
    assert torch.equal(before_proj["x"][:, 8:], x[:, 8:])
    assert not torch.allclose(before_proj["x"][:, :8], x[:, :8])


@pytest.mark.parametrize("bad", [{"pdim": 0}, {"pdim": 65}, {"qk_dim": 0}], ids=["pdim-0", "pdim-too-big", "qk-0"])
def test_shsa_rejects_impossible_sizes(bad):
    with pytest.raises(ValueError, match="SHSA"):
        shsa.SHSA(64, **bad)


# ---- BiLevelRoutingAttention --------------------------------------------------------------------------------
# What the official module computes, with its weights, is pinned by tests/unit/test_parity.py; these pin the rest.


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("hw", [(20, 20), (13, 17), (5, 5), (1, 1), (3, 7)], ids=lambda hw: f"{hw[0]}x{hw[1]}")
def test_bra_odd_and_smaller_than_n_win_sizes(hw, mode):
    torch.manual_seed(0)
    layer = biformer.BiLevelRoutingAttention(32, num_heads=4).train(mode == "train")
    out = layer(torch.randn(1, 32, *hw))
    assert out.shape == (1, 32, *hw) and torch.isfinite(out).all()


@pytest.mark.parametrize("side", [160, 80, 40, 20])
def test_bra_runs_on_the_maps_of_a_640_input(side):
    """P2..P5 of a 640 image; none is a multiple of n_win = 7. Few channels keep the 160x160 attention small."""
    layer = biformer.BiLevelRoutingAttention(8, num_heads=1).eval()
    with torch.no_grad():
        out = layer(torch.randn(1, 8, side, side))
    assert out.shape == (1, 8, side, side) and torch.isfinite(out).all()


PADDED_TO_N_WIN_7 = [((20, 20), (21, 21)), ((13, 17), (14, 21)), ((5, 5), (7, 7)), ((1, 9), (7, 14))]


@pytest.mark.parametrize("hw,padded_hw", PADDED_TO_N_WIN_7, ids=["20x20", "13x17", "5x5", "1x9"])
def test_bra_zero_pads_bottom_right_before_qkv_and_crops(hw, padded_hw):
    """Zero-padding the input ourselves to the size the layer pads to changes nothing at real positions."""
    torch.manual_seed(0)
    layer = biformer.BiLevelRoutingAttention(16, num_heads=2).eval()
    x = torch.randn(2, 16, *hw)
    (h, w), (padded_h, padded_w) = hw, padded_hw
    padded = torch.nn.functional.pad(x, (0, padded_w - w, 0, padded_h - h))
    with torch.no_grad():
        torch.testing.assert_close(layer(x), layer(padded)[:, :, :h, :w], rtol=0, atol=0)


@pytest.mark.parametrize("hw", [(4, 4), (3, 7)], ids=["4x4", "3x7"])
def test_bra_topk_above_region_count(hw):
    layer = biformer.BiLevelRoutingAttention(16, num_heads=2, n_win=2, topk=9)  # 4 regions
    out = layer(torch.randn(2, 16, *hw))
    assert out.shape == (2, 16, *hw) and torch.isfinite(out).all()


def full_attention_reference(layer, x):
    """Plain multi-head attention over all tokens of the zero-padded map + lepe, scaled by dim^-0.5, cropped."""
    h, w = x.shape[-2:]
    x = torch.nn.functional.pad(x, (0, -w % layer.n_win, 0, -h % layer.n_win))
    n, c, padded_h, padded_w = x.shape
    q, k, v = layer.qkv(x).chunk(3, dim=1)
    heads = layer.num_heads

    def split(t):
        return t.reshape(n, heads, c // heads, padded_h * padded_w).transpose(-2, -1)  # (N, heads, HW, hd)

    attn = (split(q) @ split(k).transpose(-2, -1) * c**-0.5).softmax(-1)
    out = (attn @ split(v)).transpose(-2, -1).reshape(n, c, padded_h, padded_w)
    return layer.proj((out + layer.lepe(v))[:, :, :h, :w])


@pytest.mark.parametrize("hw", [(12, 12), (13, 17), (2, 2)], ids=["12x12-divisible", "13x17-padded", "2x2-small"])
def test_bra_routing_to_every_region_is_full_attention(hw):
    """topk >= regions leaves nothing to route: full attention over the padded map, cropped."""
    torch.manual_seed(0)
    layer = biformer.BiLevelRoutingAttention(16, num_heads=4, n_win=3, topk=9).eval()
    x = torch.randn(2, 16, *hw)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), full_attention_reference(layer, x), rtol=1e-4, atol=1e-5)


def test_bra_routing_limits_what_a_region_sees():
    """With topk=1 the result differs from full attention: routing really restricts the keys."""
    torch.manual_seed(0)
    layer = biformer.BiLevelRoutingAttention(16, num_heads=4, n_win=3, topk=1).eval()
    x = torch.randn(1, 16, 12, 12)
    with torch.no_grad():
        assert not torch.allclose(layer(x), full_attention_reference(layer, x), atol=1e-4)


def test_bra_rejects_dim_not_divisible_by_heads():
    with pytest.raises(ValueError, match="dim=30 must be divisible by num_heads=8"):
        biformer.BiLevelRoutingAttention(30)


# ---- RIFormerBlock ------------------------------------------------------------------------------------------


def randomise(module):
    """Non-trivial values for every parameter (layer scales, affine, norms), so folding errors show.

    Conv weights get a fan-in scale, as in training, so the MLP does not amplify float rounding by 100x.
    """
    with torch.no_grad():
        for p in module.parameters():
            scale = p[0].numel() ** -0.5 if p.ndim == 4 else 1.0
            p.copy_(scale * torch.randn_like(p))


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("c1,c2,ratio", [(64, 64, 4), (24, 40, 2)], ids=["keep-64", "project-24-40"])
def test_riformer_deploy_matches_training_form(c1, c2, ratio, mode):
    torch.manual_seed(0)
    block = riformer.RIFormerBlock(c1, c2, ratio).train(mode == "train")
    randomise(block)
    x = torch.randn(2, c1, 7, 9)
    with torch.no_grad():
        expected = block(x)
        before = n_params(block)
        block.switch_to_deploy()
        got = block(x)
    assert block.deploy
    assert n_params(block) == before - 3 * c2  # affine weight + bias and layer_scale1 are gone
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_riformer_switch_to_deploy_twice_is_noop():
    torch.manual_seed(0)
    block = riformer.RIFormerBlock(16, 16)
    randomise(block)
    x = torch.randn(1, 16, 5, 5)
    block.switch_to_deploy()
    with torch.no_grad():
        once = block(x)
        block.switch_to_deploy()
        assert torch.equal(block(x), once)


def test_riformer_token_mixer_starts_as_zero():
    """Affine = identity at init, so the first branch adds exactly nothing (the paper's starting point)."""
    block = riformer.RIFormerBlock(8, 8)
    torch.nn.init.zeros_(block.layer_scale2)  # silence the MLP branch to look at the mixer alone
    x = torch.randn(1, 8, 4, 4)
    assert torch.equal(block(x), x)


# ---- token_mixer (BHViT MSGDC) ------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [30, 2, 6, 0])
def test_token_mixer_rejects_channels_not_divisible_by_four(channels):
    with pytest.raises(ValueError, match=f"C={channels} "):
        bhvit.token_mixer(channels)


def test_token_mixer_branches_use_dilations_1_3_5_with_groups_4():
    mixer = bhvit.token_mixer(16)
    assert [(c.dilation, c.padding, c.groups) for c in mixer.convs] == [
        ((1, 1), (1, 1), 4),
        ((3, 3), (3, 3), 4),
        ((5, 5), (5, 5), 4),
    ]


def test_token_mixer_output_is_layer_normalised_over_channels():
    torch.manual_seed(0)
    out = bhvit.token_mixer(16)(3 * torch.randn(2, 16, 6, 6) + 1)
    torch.testing.assert_close(out.mean(dim=1), torch.zeros(2, 6, 6), atol=1e-5, rtol=0)
    var = out.var(dim=1, unbiased=False)
    assert math.isclose(var.mean().item(), 1.0, abs_tol=1e-3)
