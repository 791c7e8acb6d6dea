"""MATLAB-compatible bicubic imresize: hand-derived values and MATLAB's documented behaviour."""
import numpy as np
import pytest
import torch

from imresize import contributions, imresize


def test_shrink_by_two_matches_hand_derived_weights():
    # scale 1/2 with antialiasing: kernel 0.5*cubic(0.5 t), 8 taps of weight
    # [-3, -9, 29, 111, 111, 29, -9, -3] / 256 (cubic(1.75) = -3/128, cubic(1.25) = -9/128,
    # cubic(0.75) = 29/128, cubic(0.25) = 111/128); out-of-range taps mirror with the
    # edge repeated (index 0 -> 1, -1 -> 2, -2 -> 3, 1-based).
    v = torch.tensor([[10., 20., 40., 80., 0., 0., 0., 0.]], dtype=torch.float64)
    out = imresize(v, output_size=(1, 4))
    first = (140 * 10 + 102 * 20 + 26 * 40 - 9 * 80) / 256       # taps -2..5 around u = 1.5
    second = (-12 * 10 + 29 * 20 + 111 * 40 + 111 * 80) / 256    # taps 0..7 around u = 3.5
    assert out.shape == (1, 4)
    assert out[0, 0].item() == pytest.approx(first, abs=1e-12)
    assert out[0, 1].item() == pytest.approx(second, abs=1e-12)
    w, _ = contributions(8, 4, 0.5)
    assert np.allclose(w[1] * 256, [-3, -9, 29, 111, 111, 29, -9, -3])


def test_enlarge_by_two_edge_values_hand_derived():
    # u = 0.75 for the first output; taps -1..2 with cubic(1.75), cubic(0.75), cubic(0.25),
    # cubic(1.25) = -3/128, 29/128, 111/128, -9/128; index -1 mirrors to 2, 0 to 1.
    v = torch.tensor([[0., 1., 2., 3.]], dtype=torch.float64)
    out = imresize(v, 2)
    assert out.shape == (2, 8)
    assert out[0, 0].item() == pytest.approx(-3 / 32, abs=1e-12)
    assert out[0, -1].item() == pytest.approx(3 + 3 / 32, abs=1e-12)
    assert torch.equal(out[0], out[1])           # the single-row-to-two direction is exact


def test_keys_kernel_reproduces_quadratics_in_the_interior():
    # Keys' cubic with a = -0.5 (MATLAB's) interpolates polynomials up to degree 2 exactly;
    # output x (1-based) sits at input u = x/s + (1 - 1/s)/2.
    n, s = 20, 3
    t = torch.arange(1, n + 1, dtype=torch.float64)
    f = 0.5 * t * t - 3 * t + 7
    out = imresize(f[None, :], output_size=(1, n * s))[0]
    x = torch.arange(1, n * s + 1, dtype=torch.float64)
    u = x / s + 0.5 * (1 - 1 / s)
    inner = (u > 3) & (u < n - 2)
    assert torch.allclose(out[inner], (0.5 * u * u - 3 * u + 7)[inner], atol=1e-9)


@pytest.mark.parametrize('scale', [1 / 2, 1 / 3, 1 / 4, 2, 3, 4])
@pytest.mark.parametrize('size', [(8, 8), (7, 9), (13, 5)])
def test_constant_image_stays_constant_and_sizes_are_ceil(scale, size):
    x = torch.full((3, *size), 117.0, dtype=torch.float64)
    out = imresize(x, scale)
    expected = tuple(int(np.ceil(scale * n - 1e-9)) for n in size)
    assert out.shape == (3, *expected)
    assert torch.allclose(out, torch.full_like(out, 117.0), atol=1e-10)


def test_sizes_that_are_integers_up_to_rounding_do_not_round_up():
    # 1.1 * 50 is 55.00000000000001 in floating point; a bare ceil would give 56.
    x = torch.zeros(50, 20, dtype=torch.float32)
    assert imresize(x, 1.1).shape == (55, 22)


def test_antialiasing_removes_aliasing_when_shrinking():
    # A cosine of period 3 pixels lies above the Nyquist frequency of the x2 smaller grid:
    # MATLAB's antialiasing (kernel widened by 1/scale) damps it; plain bicubic sampling
    # aliases it into a strong pattern.
    t = torch.arange(48, dtype=torch.float64)
    x = torch.cos(2 * torch.pi * t / 3)[None, :].repeat(4, 1)
    with_aa = imresize(x, 0.5)[:, 3:-3].abs().max()
    without = imresize(x, 0.5, antialiasing=False)[:, 3:-3].abs().max()
    assert with_aa < 0.2
    assert without > 0.6


def test_weights_sum_to_one_and_indices_in_range_for_odd_sizes():
    for n_in, n_out, s in [(7, 3, 3 / 7), (5, 17, 17 / 5), (1, 4, 4.0), (9, 2, 2 / 9)]:
        w, idx = contributions(n_in, n_out, s)
        assert np.allclose(w.sum(1), 1.0)
        assert idx.min() >= 0 and idx.max() < n_in


def test_batched_input_and_dtypes_agree():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((2, 3, 11, 14)) * 255)
    whole = imresize(x, output_size=(5, 9))
    one = imresize(x[1, 2], output_size=(5, 9))
    assert torch.allclose(whole[1, 2], one, atol=1e-12)
    single = imresize(x.float(), output_size=(5, 9))
    assert single.dtype == torch.float32
    assert torch.allclose(single.double(), whole, atol=1e-3)


def test_per_dimension_scales_from_output_size():
    # Shrinking rows and enlarging columns at once: the two 1-D resizes commute.
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.random((12, 10)))
    both = imresize(x, output_size=(4, 25))
    rows_then_cols = imresize(imresize(x, output_size=(4, 10)), output_size=(4, 25))
    assert both.shape == (4, 25)
    assert torch.allclose(both, rows_then_cols, atol=1e-12)


def test_bad_arguments():
    with pytest.raises(TypeError):
        imresize(torch.zeros(4, 4, dtype=torch.uint8), 2)
    with pytest.raises(ValueError):
        imresize(torch.zeros(4, 4), 2, output_size=(8, 8))
    with pytest.raises(ValueError):
        imresize(torch.zeros(4, 4), -1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu():
    x = torch.rand(2, 3, 33, 27, dtype=torch.float64) * 255
    cpu = imresize(x, 1 / 3)
    gpu = imresize(x.cuda(), 1 / 3).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-9)
