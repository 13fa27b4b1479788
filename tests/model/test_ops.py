"""Low-level ops (model/ops.py): upfirdn2d against its definition, the batched modulated
convolution against the official per-sample formulation, and their gradients."""
import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from model.ops import conv_transpose2d_stride2, fir_kernel, modulated_conv2d, upfirdn2d


def _naive_upfirdn2d(x, k, up, down, pad):
    x = x.numpy()
    B, C, H, W = x.shape
    u = np.zeros((B, C, H * up, W * up))
    u[:, :, ::up, ::up] = x
    p0, p1 = pad
    u = np.pad(u, ((0, 0), (0, 0), (max(p0, 0), max(p1, 0)), (max(p0, 0), max(p1, 0))))
    if p0 < 0 or p1 < 0:
        u = u[:, :, -min(p0, 0): u.shape[2] + min(p1, 0), -min(p0, 0): u.shape[3] + min(p1, 0)]
    out = np.stack([np.stack([scipy.signal.convolve2d(u[b, c], k.numpy(), mode="valid") for c in range(C)])
                    for b in range(B)])
    return out[:, :, ::down, ::down]


@pytest.mark.parametrize("up,down,pad", [(1, 1, (1, 2)), (1, 1, (1, 1)), (2, 1, (2, 1)), (1, 2, (2, 2)), (2, 2, (-1, 1))])
def test_upfirdn2d_matches_definition(up, down, pad):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 7, generator=g, dtype=torch.float64)
    k = torch.randn(4, 4, generator=g, dtype=torch.float64)  # asymmetric: checks the flip
    ours = upfirdn2d(x, k, up=up, down=down, pad=pad).numpy()
    np.testing.assert_allclose(ours, _naive_upfirdn2d(x, k, up, down, pad), rtol=1e-12, atol=1e-12)


def _per_sample_modconv(x, weight, styles, demodulate, upsample, blur):
    """The official formulation: one modulated weight per sample."""
    outs = []
    for b in range(x.shape[0]):
        w = weight if styles is None else weight * styles[b][None, :, None, None]
        if demodulate:
            w = w * torch.rsqrt(w.square().sum(dim=(1, 2, 3)) + 1e-8)[:, None, None, None]
        if upsample:
            o = F.conv_transpose2d(x[b:b + 1], w.transpose(0, 1), stride=2)
            o = upfirdn2d(o, blur, pad=(1, 1))
        else:
            o = F.conv2d(x[b:b + 1], w, padding=w.shape[-1] // 2)
        outs.append(o)
    return torch.cat(outs)


@pytest.mark.parametrize("upsample", [False, True])
@pytest.mark.parametrize("demodulate", [False, True])
@pytest.mark.parametrize("modulated", [False, True])
@pytest.mark.parametrize("batch", [3, 1], ids=["batch", "one sample"])  # one sample modulates the weight
def test_batched_modulated_conv_equals_per_sample(upsample, demodulate, modulated, batch):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 5, 6, 6, generator=g, dtype=torch.float64)
    w = torch.randn(4, 5, 3, 3, generator=g, dtype=torch.float64) / 3
    s = torch.rand(batch, 5, generator=g, dtype=torch.float64) + 0.5 if modulated else None
    blur = fir_kernel(gain=4.0)
    ours = modulated_conv2d(x, w, s, demodulate, upsample, blur)
    ref = _per_sample_modconv(x, w, s, demodulate, upsample, blur)
    assert ours.shape == ref.shape == (batch, 4, 12 if upsample else 6, 12 if upsample else 6)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("channels_last", [False, True])
def test_transposed_conv_by_phases_equals_conv_transpose2d(k, channels_last):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 6, 7, generator=g, dtype=torch.float64)
    w = torch.randn(4, 5, k, k, generator=g, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    w.requires_grad_()
    ours, ref = conv_transpose2d_stride2(x, w), F.conv_transpose2d(x, w.transpose(0, 1), stride=2)
    assert ours.shape == ref.shape == (2, 4, 12 + k - 2, 14 + k - 2)
    if k > 1:  # (k = 1 is conv_transpose2d itself)
        assert ours.is_contiguous(memory_format=torch.channels_last) == channels_last
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    up = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad((ours * up).sum(), (x, w)), torch.autograd.grad((ref * up).sum(), (x, w))):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_styled_conv_keeps_bf16_activations_under_autocast():
    """Noise and bias are added in the activations' dtype: under bf16 autocast the elementwise
    passes after a convolution stay bf16 (half the memory traffic), in float32 nothing changes."""
    from model.layers import StyledConv

    torch.manual_seed(0)
    layer = StyledConv(8, 8, 3, style_dim=4)
    with torch.no_grad():
        layer.noise.strength.fill_(0.3)
        layer.bias.normal_()
    x, style, noise = torch.randn(2, 8, 6, 6), torch.randn(2, 4), torch.randn(1, 1, 6, 6)
    full = layer(x, style, None, noise)
    with torch.autocast("cpu", torch.bfloat16):
        half = layer(x, style, None, noise)
    assert full.dtype == torch.float32 and half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), full, rtol=0.05, atol=0.05)


def test_gradients_of_ops():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    s = (torch.rand(2, 3, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    blur = fir_kernel(gain=4.0)
    assert torch.autograd.gradcheck(lambda a, b, c: modulated_conv2d(a, b, c, True, True, blur), (x, w, s))
    assert torch.autograd.gradcheck(lambda a: upfirdn2d(a, fir_kernel(), up=2, down=1, pad=(2, 1)), (x,))



@pytest.mark.parametrize("res,box_fs", [(8, 8), (32, 32), (64, 32), (256, 128)])
def test_component_modulation_in_the_boxes_equals_the_full_map(res, box_fs):
    """The region-wise CAM (only the boxes' rectangles are touched) gives exactly the values and
    gradients of multiplying by the whole-image map, for the aligned and the released placement
    (boxes of half the input size) and where boxes overlap (a later component wins)."""
    from model.networks import Generator
    from model.boxes import boxes_at
    from model.ops import component_modulation, component_modulation_map

    owner = Generator._owner_map(res, box_fs)
    regions = boxes_at(box_fs)
    assert sum((y1 - y0) * (x1 - x0) for x0, y0, x1, y1 in regions) < owner.numel()
    torch.manual_seed(0)
    x = torch.randn(2, 5, res, res, requires_grad=True)
    h = torch.randn(2, 4, 5, requires_grad=True)
    g = torch.randn(2, 5, res, res)
    want = x * component_modulation_map(h, owner)
    got = component_modulation(x, h, owner, regions)
    assert torch.equal(got, want)
    gx, gh = torch.autograd.grad((want * g).sum(), (x, h))
    gx2, gh2 = torch.autograd.grad((got * g).sum(), (x, h))
    assert torch.equal(gx2, gx) and torch.allclose(gh2, gh, atol=1e-5)
    # Overlapping boxes: the later component owns the shared pixels, and each pixel is scaled once.
    ov = torch.full((6, 6), 4, dtype=torch.long)
    ov[0:4, 0:4] = 0
    ov[2:6, 2:6] = 1
    got = component_modulation(x[:, :, :6, :6], h, ov, [(0, 0, 4, 4), (2, 2, 6, 6), (0, 0, 0, 0), (0, 0, 0, 0)])
    assert torch.equal(got, x[:, :, :6, :6] * component_modulation_map(h, ov))
