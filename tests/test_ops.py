"""jojogan.ops: the plain and fast upfirdn2d paths agree, forward and backward."""

import math
import threading

import pytest
import torch

from jojogan import ops
from jojogan.ops import (
    Blur,
    Downsample,
    FusedLeakyReLU,
    Upsample,
    fast_ops,
    fused_leaky_relu,
    make_kernel,
    upfirdn2d,
)

K4 = make_kernel([1, 3, 3, 1])

# (name, kernel, up, down, pad): every resampling the generator and discriminator use, then
# a few others that exercise the general code (asymmetric / negative pads, up and down together).
MODEL_CASES = [
    ("ToRGB Upsample", K4 * 4, 2, 1, (2, 1)),
    ("Blur after transposed 3x3 conv", K4 * 4, 1, 1, (1, 1)),
    ("D Blur before stride-2 3x3 conv", K4, 1, 1, (2, 2)),
    ("D Blur before stride-2 1x1 skip", K4, 1, 1, (1, 1)),
    ("Downsample", K4, 1, 2, (1, 1)),
]
OTHER_CASES = [
    ("asymmetric pad", K4, 1, 1, (2, 0)),
    ("negative pad (crop)", K4, 1, 1, (-1, 2)),
    ("up and down", K4 * 4, 2, 2, (2, 1)),
    ("up 4", make_kernel([1, 3, 3, 1]) * 16, 4, 1, (3, 1)),
    ("non-square kernel", torch.rand(3, 2, dtype=torch.float64), 1, 1, (1, 1)),
]


def _both_paths(x, kernel, up, down, pad):
    outs, grads = [], []
    for fast in (False, True):
        xi = x.detach().clone().requires_grad_(True)
        with fast_ops(fast):
            y = upfirdn2d(xi, kernel, up=up, down=down, pad=pad)
        (gx,) = torch.autograd.grad(
            y, xi, torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
        )
        outs.append(y.detach())
        grads.append(gx)
    return outs, grads


@pytest.mark.parametrize("case", MODEL_CASES + OTHER_CASES, ids=lambda c: c[0])
def test_fast_and_plain_paths_agree_in_float64_forward_and_gradient(case):
    _, kernel, up, down, pad = case
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (y_plain, y_fast), (g_plain, g_fast) = _both_paths(x, kernel.double(), up, down, pad)
    assert y_plain.shape == y_fast.shape
    torch.testing.assert_close(y_fast, y_plain, rtol=0, atol=1e-12)
    torch.testing.assert_close(g_fast, g_plain, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c[0])
def test_fast_path_really_is_one_depthwise_conv_for_every_model_resampling(case):
    _, kernel, up, down, pad = case
    x = torch.randn(1, 4, 6, 6, dtype=torch.float64)
    out = ops._upfirdn2d_fast(x, kernel.double(), up, down, *pad)
    assert out is not None, "the model's resampling fell back to the plain path"


@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])
@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c[0])
def test_gradcheck_each_path(case, fast):
    _, kernel, up, down, pad = case
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    with fast_ops(fast):
        assert torch.autograd.gradcheck(
            lambda t: upfirdn2d(t, kernel.double(), up=up, down=down, pad=pad), (x,)
        )


@pytest.mark.parametrize("fast", [False, True], ids=["plain", "fast"])
def test_hand_checked_cases(fast):
    with fast_ops(fast):
        # a unit impulse padded by one on each side comes out as the kernel itself (a true
        # convolution, not a correlation)
        k = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
        assert torch.equal(upfirdn2d(torch.ones(1, 1, 1, 1), k, pad=(1, 1))[0, 0], k)
        # zero insertion with a 1x1 kernel
        x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
        up = torch.tensor([[1.0, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]])
        assert torch.equal(upfirdn2d(x, torch.ones(1, 1), up=2)[0, 0], up)
        # decimation keeps every second sample from the first
        x = torch.arange(16.0).view(1, 1, 4, 4)
        assert torch.equal(upfirdn2d(x, torch.ones(1, 1), down=2)[0, 0], x[0, 0, ::2, ::2])
        # a [1,3,3,1] blur of a constant image is the constant inside the padded border
        blurred = Blur([1, 3, 3, 1], pad=(1, 1))(torch.full((1, 2, 6, 6), 5.0))
        assert blurred.shape == (1, 2, 5, 5)
        torch.testing.assert_close(blurred[..., 1:-1, 1:-1], torch.full((1, 2, 3, 3), 5.0))
        # the FIR upsampler keeps a constant image constant away from the border
        upsampled = Upsample([1, 3, 3, 1])(torch.full((1, 1, 4, 4), 2.0))
        assert upsampled.shape == (1, 1, 8, 8)
        torch.testing.assert_close(upsampled[..., 2:-2, 2:-2], torch.full((1, 1, 4, 4), 2.0))
        assert Downsample([1, 3, 3, 1])(torch.ones(1, 1, 8, 8)).shape == (1, 1, 4, 4)


def test_make_kernel_is_the_normalised_outer_product():
    k = make_kernel([1, 3, 3, 1])
    assert k.shape == (4, 4) and k.dtype == torch.float32
    torch.testing.assert_close(
        k, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64
    )
    with pytest.raises(ValueError, match="1-D or 2-D"):
        make_kernel(torch.ones(2, 2, 2))


def test_resampling_modules_store_a_persistent_kernel_buffer():
    assert torch.equal(Upsample([1, 3, 3, 1]).state_dict()["kernel"], K4 * 4)
    assert torch.equal(Downsample([1, 3, 3, 1]).state_dict()["kernel"], K4)
    assert torch.equal(Blur([1, 3, 3, 1], (1, 1), upsample_factor=2).state_dict()["kernel"], K4 * 4)
    assert Upsample([1, 3, 3, 1]).pad == (2, 1) and Downsample([1, 3, 3, 1]).pad == (1, 1)


def test_fused_leaky_relu_adds_bias_then_scaled_leaky_relu():
    x = torch.tensor([[-1.0, 2.0]]).view(1, 2, 1)
    out = fused_leaky_relu(x, torch.tensor([0.5, 0.5]))
    expected = torch.tensor([-0.5 * 0.2, 2.5]).view(1, 2, 1) * math.sqrt(2)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(
        fused_leaky_relu(torch.tensor([[-3.0]])), torch.tensor([[-0.6 * 2**0.5]])
    )
    m = FusedLeakyReLU(5)
    assert list(m.state_dict()) == ["bias"] and m.bias.shape == (5,)
    assert list(FusedLeakyReLU(5, bias=False).state_dict()) == []


@pytest.mark.parametrize(
    "name, default",
    [("fast_ops", True), ("channels_last", False)],
)
def test_switches_and_their_context_managers_restore_the_setting(name, default):
    enabled, scoped, setter = (
        getattr(ops, f"{name}_enabled"),
        getattr(ops, name),
        getattr(ops, f"set_{name}"),
    )
    assert enabled() is default
    with scoped(not default):
        assert enabled() is (not default)
        with scoped(default):
            assert enabled() is default
        assert enabled() is (not default)
    assert enabled() is default
    with pytest.raises(RuntimeError, match="boom"), scoped(not default):
        raise RuntimeError("boom")
    assert enabled() is default  # restored after an exception too
    setter(not default)
    try:
        assert enabled() is (not default)
    finally:
        setter(default)
    assert enabled() is default


def test_switches_are_thread_local_and_never_leak_between_concurrent_threads():
    """Two threads (two prompts) hold opposite settings at the same time, one through the scoped
    context managers and one through set_* calls it never undoes: each sees its own, and the
    main thread's settings (the global defaults) are unchanged afterwards."""
    barrier = threading.Barrier(2, timeout=10)
    seen: dict[str, list[tuple[bool, bool]]] = {"scoped": [], "set": []}
    errors: list[BaseException] = []

    def observe(key: str) -> None:
        barrier.wait()  # both threads have switched: from here on they overlap
        for _ in range(3):
            seen[key].append((ops.channels_last_enabled(), ops.fast_ops_enabled()))
            barrier.wait()

    def scoped_worker() -> None:
        try:
            with ops.channels_last(True), ops.fast_ops(False):
                observe("scoped")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
            barrier.abort()

    def setter_worker() -> None:
        try:
            ops.set_channels_last(False)
            ops.set_fast_ops(True)
            observe("set")
            ops.set_channels_last(True)  # left on when the thread ends: must not leak
            ops.set_fast_ops(False)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=scoped_worker), threading.Thread(target=setter_worker)]
    with ops.channels_last(False):  # the main thread's own scope, around both
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert ops.channels_last_enabled() is False
    assert not errors, errors
    assert seen["scoped"] == [(True, False)] * 3
    assert seen["set"] == [(False, True)] * 3
    assert ops.channels_last_enabled() is False and ops.fast_ops_enabled() is True
    # a thread started now begins from the defaults, whatever the ended threads set
    fresh: list[tuple[bool, bool]] = []
    t = threading.Thread(
        target=lambda: fresh.append((ops.channels_last_enabled(), ops.fast_ops_enabled()))
    )
    t.start()
    t.join(timeout=10)
    assert fresh == [(False, True)]


def test_bad_arguments_get_clear_errors():
    with pytest.raises(ValueError, match=r"\[B,C,H,W\]"):
        upfirdn2d(torch.ones(3, 4, 4), K4)
    with pytest.raises(ValueError, match="2-D kernel"):
        upfirdn2d(torch.ones(1, 1, 4, 4), torch.ones(4))
    with pytest.raises(ValueError, match="pad must be"):
        upfirdn2d(torch.ones(1, 1, 4, 4), K4, pad=(1, 1, 1))
    with pytest.raises(ValueError, match="up and down"):
        upfirdn2d(torch.ones(1, 1, 4, 4), K4, up=0)


@pytest.mark.parametrize("with_bias", [True, False])
def test_fused_leaky_relu_paths_agree_forward_and_gradient(with_bias):
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=gen)
    b0 = torch.randn(3, dtype=torch.float64, generator=gen)
    results = []
    for fast in (False, True):
        x, b = x0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
        with fast_ops(fast):
            y = fused_leaky_relu(x, b if with_bias else None)
        y.backward(torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y))
        results.append((y.detach(), x.grad, b.grad))
        assert torch.equal(x, x0)  # the input is never modified in place
    for a, c in zip(*results, strict=True):
        if a is None:
            assert c is None
        else:
            torch.testing.assert_close(a, c, rtol=1e-14, atol=1e-14)
