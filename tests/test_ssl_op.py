"""The compiled SSL patch-distance op: values and gradients against the pure-PyTorch oracle,
gradcheck, input forms, errors, determinism, the CUDA sources and the loader's failure message.

The oracle (loss.ssl_cuda.reference) indexes every term straight from the definition and
orders rows with torch.nonzero, so agreement also checks the row order.
"""
import ctypes
import os
import platform
import re
import shutil
import subprocess
import sys

import pytest
import torch

import utility
from loss.ssl_cuda import _build, patch_distances
from loss.ssl_cuda.reference import patch_distances_reference

SOURCES = _build.SOURCE_DIR
BENCH = SOURCES.parents[2] / 'bench' / 'ssl_op.py'


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: one intra-op thread avoids waking the pool for every op (seconds of
    waiting on a busy machine). The parallel path is checked against it below."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_mask(shape, counts, gen):
    """Bool mask [B, 1, H, W] with counts[b] random pixels set in image b."""
    b, _, h, w = shape
    mask = torch.zeros(b, h * w, dtype=torch.bool)
    for i, n in enumerate(counts):
        mask[i, torch.randperm(h * w, generator=gen)[:n]] = True
    return mask.view(b, 1, h, w)


def rel_err(a, b):
    """max |a - b| / max |b| (0 when both are all zero)."""
    err = (a.double() - b.double()).abs().max()
    return 0.0 if err == 0 else (err / b.double().abs().max()).item()


# (B, C, H, W, search, window, masked pixels per image)
CASES = [
    (2, 3, 20, 23, 7, 3, (40, 11)),
    (2, 1, 30, 17, 9, 5, (60, 0)),          # an image without a masked pixel
    (3, 3, 40, 36, 25, 9, (90, 5, 40)),     # the defaults
    (1, 3, 13, 13, 25, 9, (169,)),          # smallest image for search 25, every pixel
    (1, 2, 9, 11, 5, 5, (30,)),             # window == search
    (2, 3, 70, 40, 11, 1, (150, 70)),       # window 1, several row bands
    (1, 3, 8, 8, 1, 1, (10,)),              # search 1
    (2, 3, 34, 150, 15, 7, (200, 50)),      # wide
    (1, 3, 30, 33, 21, 9, (230,)),          # smallest search of the forward's default path
    (1, 3, 30, 33, 19, 9, (230,)),          # largest below it (the general path)
    (1, 3, 30, 33, 23, 9, (230,)),          # largest whose sq part takes two vectors
    (1, 3, 40, 40, 31, 9, (160,)),          # largest search of the forward's default path
    (1, 3, 40, 40, 41, 9, (60,)),           # offsets past 32 lanes: row stride set at run time
    (1, 1, 36, 38, 67, 5, (12,)),           # offsets in two tiles of lanes
]


@pytest.mark.parametrize('case', CASES, ids=lambda c: 'x'.join(map(str, c[:6])))
def test_float32_op_matches_float64_oracle(case):
    b, c, h, w, search, window, counts = case
    gen = torch.Generator().manual_seed(sum(case[:6]))
    image = torch.rand(b, c, h, w, generator=gen)
    mask = random_mask(image.shape, counts, gen)

    x = image.clone().requires_grad_()
    d = patch_distances(x, mask, search, window)
    x64 = image.double().requires_grad_()  # same input values, float64 arithmetic
    ref = patch_distances_reference(x64, mask, search, window)
    assert d.shape == (sum(counts), search * search) and d.dtype == torch.float32
    assert rel_err(d, ref) <= 1e-5
    # every entry, not only the largest: a sum of non-negative terms keeps its precision
    assert ((d.double() - ref).abs() <= 2e-6 * ref.abs() + 1e-12).all()

    upstream = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    d.backward(upstream.float())
    ref.backward(upstream)
    assert rel_err(x.grad, x64.grad) <= 1e-4


def _oracle_case(case, gen):
    """For a case of CASES: a random image and mask, the float64 oracle's D, a random
    upstream gradient and the oracle's gradient for it (image, mask, ref, upstream, ref_grad)."""
    b, c, h, w, search, window, counts = case
    image = torch.rand(b, c, h, w, generator=gen)
    mask = random_mask(image.shape, counts, gen)
    x64 = image.double().requires_grad_()
    ref = patch_distances_reference(x64, mask, search, window)
    upstream = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    ref.backward(upstream)
    return image, mask, ref.detach(), upstream, x64.grad


@pytest.mark.parametrize('way', [0, 1], ids=['per_pixel', 'shared'])
def test_each_way_of_the_backward_matches_the_oracle(way):
    """The backward forced one way (0: one pixel at a time, 1: shared between the pixels whose
    windows cover a pixel) on every case above, whatever the masks' overlap would choose: the
    oracle's gradient, bitwise the same on 1 and 2 threads; and in float64 to 1e-12."""
    ext = _build.load()
    gen = torch.Generator().manual_seed(13)
    for case in CASES:
        search, window = case[4:6]
        image, mask, _, upstream, ref_grad = _oracle_case(case, gen)
        p = search // 2
        pos = torch.nonzero(mask[:, 0]).contiguous()
        for dtype, tol in ((torch.float32, 1e-4), (torch.float64, 1e-12)):
            x = image.to(dtype).clone().requires_grad_()
            padded = torch.nn.functional.pad(x, (p, p, p, p), mode='reflect')
            grads = []
            for threads in (1, 2):
                torch.set_num_threads(threads)
                grads.append(ext.backward(padded.detach().contiguous(), pos,
                                          upstream.to(dtype).contiguous(), search, window,
                                          way=way))
            torch.set_num_threads(1)
            assert torch.equal(grads[0], grads[1]), case
            padded.backward(grads[0])  # fold the padding's gradient back, as the op does
            assert rel_err(x.grad, ref_grad) <= tol, (case, dtype)


def test_float64_op_equals_oracle():
    gen = torch.Generator().manual_seed(3)
    image = torch.rand(2, 3, 26, 31, generator=gen, dtype=torch.float64)
    mask = random_mask(image.shape, (70, 33), gen)
    d = patch_distances(image, mask, 13, 5)
    assert d.dtype == torch.float64
    assert rel_err(d, patch_distances_reference(image, mask, 13, 5)) < 1e-13


@pytest.mark.parametrize('shape, search, window, counts', [
    ((1, 2, 7, 8), 5, 3, (9,)),
    ((2, 1, 6, 6), 3, 3, (4, 7)),
    ((1, 3, 9, 5), 7, 5, (6,)),
])
def test_gradcheck_float64(shape, search, window, counts):
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(shape, generator=gen, dtype=torch.float64).requires_grad_()
    mask = random_mask(shape, counts, gen)
    assert torch.autograd.gradcheck(lambda t: patch_distances(t, mask, search, window), (image,))


def test_any_strides_give_the_same_result():
    gen = torch.Generator().manual_seed(2)
    base = torch.rand(2, 3, 30, 50, generator=gen)
    mask = random_mask((2, 1, 30, 25), (40, 60), gen)
    views = {
        'contiguous': base[..., ::2].contiguous(),
        'strided': base[..., ::2],
        'channels_last': base[..., ::2].contiguous(memory_format=torch.channels_last),
        'transposed': base[..., ::2].transpose(2, 3).contiguous().transpose(2, 3),
    }
    results = {}
    for name, view in views.items():
        x = view.detach().requires_grad_()
        d = patch_distances(x, mask, 9, 3)
        d.backward(torch.ones_like(d))
        results[name] = (d, x.grad)
    d0, g0 = results['contiguous']
    for name, (d, g) in results.items():
        assert torch.equal(d, d0), name
        assert torch.equal(g, g0), name


def test_empty_mask_gives_no_rows_and_a_zero_gradient():
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    d = patch_distances(x, torch.zeros(2, 1, 16, 16, dtype=torch.bool), 7, 3)
    assert d.shape == (0, 49)
    d.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_mask_may_be_bool_or_numbers_0_1():
    gen = torch.Generator().manual_seed(4)
    image = torch.rand(1, 3, 15, 15, generator=gen)
    mask = random_mask(image.shape, (30,), gen)
    d = patch_distances(image, mask, 7, 3)
    for dtype in (torch.uint8, torch.int64, torch.float32):
        assert torch.equal(patch_distances(image, mask.to(dtype), 7, 3), d)
    with pytest.raises(ValueError, match='only 0 and 1'):
        patch_distances(image, mask.float() * 2, 7, 3)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_computed_in_float32(dtype):
    gen = torch.Generator().manual_seed(5)
    image = torch.rand(1, 3, 14, 12, generator=gen).to(dtype)
    mask = random_mask(image.shape, (25,), gen)
    x = image.clone().requires_grad_()
    d = patch_distances(x, mask, 9, 3)
    assert d.dtype == torch.float32
    x32 = image.float().requires_grad_()
    d32 = patch_distances(x32, mask, 9, 3)
    assert torch.equal(d, d32)
    d.sum().backward()
    d32.sum().backward()
    assert x.grad.dtype == dtype
    assert torch.equal(x.grad, x32.grad.to(dtype))


def _with_threads(counts, image, mask, upstream):
    """[(distances, gradient)] of the op (search 25, window 9) run with each thread count."""
    before = torch.get_num_threads()
    outputs = []
    try:
        for threads in counts:
            torch.set_num_threads(threads)
            x = image.clone().requires_grad_()
            d = patch_distances(x, mask, 25, 9)
            d.backward(upstream)
            outputs.append((d, x.grad))
    finally:
        torch.set_num_threads(before)
    return outputs


def _oracle_for_any_thread_count(image, mask, gen):
    """Runs the op (search 25, window 9) on 1, 2 and 3 threads and the float64 oracle: checks
    every distance against the oracle's (2e-6 of each) and that the threads agree bitwise;
    returns the op's gradient and the oracle's."""
    n = int(mask.sum())
    upstream = torch.randn(n, 625, generator=gen, dtype=torch.float64)
    x64 = image.double().requires_grad_()
    ref = patch_distances_reference(x64, mask, 25, 9)
    ref.backward(upstream)
    outputs = _with_threads((1, 2, 3), image, mask, upstream.float())
    d, grad = outputs[0]
    assert ((d.double() - ref).abs() <= 2e-6 * ref.abs() + 1e-12).all()
    for d_t, g_t in outputs[1:]:
        assert torch.equal(d_t, d) and torch.equal(g_t, grad)
    return grad, x64.grad


def test_results_do_not_depend_on_the_thread_count():
    gen = torch.Generator().manual_seed(6)
    image = torch.rand(3, 3, 70, 45, generator=gen)
    mask = random_mask(image.shape, (300, 120, 200), gen)
    upstream = torch.randn(620, 625, generator=gen)
    outputs = _with_threads((1, 2, 3), image, mask, upstream)
    for d, g in outputs[1:]:
        assert torch.equal(d, outputs[0][0])
        assert torch.equal(g, outputs[0][1])


def test_both_ways_of_the_backward_match_the_oracle_for_any_thread_count():
    """The backward is shared between the pixels of a band whose windows overlap much (image
    0: a solid block, 18 windows on each pixel they cover) and taken a pixel at a time where
    they barely overlap (image 1: pixels 10 apart, one window each). Image 2, a block beside
    scattered pixels, has one band of each kind (3.4 and 1.7 windows per pixel)."""
    gen = torch.Generator().manual_seed(12)
    image = torch.rand(3, 3, 44, 47, generator=gen)
    mask = torch.zeros(3, 1, 44, 47, dtype=torch.bool)
    mask[0, 0, 14:30, 10:26] = True
    mask[1, 0, 2::10, 3::10] = True
    mask[2, 0, 20:26, 30:36] = True
    mask[2, 0, 3::7, 2::6] = True
    grad, ref_grad = _oracle_for_any_thread_count(image, mask, gen)
    for b in range(3):
        assert rel_err(grad[b], ref_grad[b]) <= 1e-4, b


def test_bands_sharing_an_image_split_its_window_rows_and_match_the_oracle():
    """Consecutive bands of an image that take the shared backward each do a share of the
    image's window rows, with the pixels of the neighbouring bands whose windows reach them.
    With 1,021 pixels, bands hold at most 128. Image 0: a solid block cut into six bands, all
    but the last ending inside a row. Image 1: a block (two bands), scattered pixels (one band
    taken a pixel at a time), another block (two bands): two runs of shared bands, whose
    windows meet the scattered band's."""
    gen = torch.Generator().manual_seed(14)
    image = torch.rand(2, 3, 80, 30, generator=gen)
    mask = torch.zeros(2, 1, 80, 30, dtype=torch.bool)
    mask[0, 0, 3:46, 8:23] = True
    mask[1, 0, 0:8, 4:26] = True
    mask[1, 0, 37:62:6, 1::9] = True
    mask[1, 0, 69:79, 6:24] = True
    grad, ref_grad = _oracle_for_any_thread_count(image, mask, gen)
    for b in range(2):
        assert rel_err(grad[b], ref_grad[b]) <= 1e-4, b


@pytest.mark.slow
def test_pixels_crowded_in_a_few_rows_match_the_oracle_for_any_thread_count():
    """An edge mask on a few rows: the work is split by pixel count inside those rows (bands
    shorter than a row here), with each image's pieces added in a fixed order."""
    gen = torch.Generator().manual_seed(8)
    image = torch.rand(2, 3, 30, 150, generator=gen)
    mask = torch.zeros(2, 1, 30, 150, dtype=torch.bool)
    mask[0, 0, 12:18] = True
    mask[1, 0, 3:5, ::3] = True
    grad, ref_grad = _oracle_for_any_thread_count(image, mask, gen)
    assert rel_err(grad, ref_grad) <= 1e-4


def test_denormals_are_flushed_only_inside_the_op():
    """The kernels count values below 1e-38 as 0 (they cost ~100 cycles a multiply); the
    rest of the process keeps IEEE arithmetic, and tiny upstream values change nothing."""
    gen = torch.Generator().manual_seed(9)
    image = torch.rand(1, 3, 30, 30, generator=gen)
    mask = random_mask(image.shape, (50,), gen)
    upstream = torch.randn(50, 625, generator=gen)
    tiny = upstream.clone()
    tiny[:, ::2] *= 1e-40  # denormal
    tiny[:, ::2] = tiny[:, ::2].clamp(-1e-39, 1e-39)
    x, x_tiny = image.clone().requires_grad_(), image.clone().requires_grad_()
    patch_distances(x, mask, 25, 9).backward(torch.where(tiny.abs() < 1e-37, 0, upstream))
    patch_distances(x_tiny, mask, 25, 9).backward(tiny)
    assert torch.equal(x.grad, x_tiny.grad)
    denormal = torch.tensor([1e-38]) * torch.tensor([0.01])
    assert denormal.item() != 0.0  # still IEEE gradual underflow after the op


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in ('x86_64', 'AMD64'), reason='x86 flags')
@pytest.mark.parametrize('flag, lanes', [('-mno-avx512f', 8), ('-march=x86-64', 4)])
def test_kernels_for_smaller_vectors_match_the_oracle(tmp_path, flag, lanes):
    """Built with -mno-avx512f the kernels use 8-lane vectors (the path of AVX2-only CPUs,
    e.g. AMD EPYC before Zen 4), with -march=x86-64 (SSE2) 4-lane ones, as on ARM's NEON:
    same values, any thread count, both ways of the backward."""
    if 'avx512f' not in _build._cpu_signature():
        pytest.skip('this CPU has no AVX-512: the default build already takes a smaller path')
    sources = [SOURCES / name for name in _build.CPU_SOURCES]
    ext = _build.build_extension(f'ssl_ops_{lanes}_lanes_test', sources, tmp_path,
                                 extra_cflags=[flag])
    assert ext.vector_bytes() == 4 * lanes  # what bench/ssl_op.py reports as the machine kind
    gen = torch.Generator().manual_seed(10)
    for case in [CASES[2], CASES[3], CASES[5], CASES[8], CASES[9]]:
        search, window = case[4:6]
        image, mask, ref, upstream, ref_grad = _oracle_case(case, gen)
        p = search // 2
        padded = torch.nn.functional.pad(image, (p, p, p, p), mode='reflect').contiguous()
        pos = torch.nonzero(mask[:, 0]).contiguous()
        for way in (0, 1):  # each way of the backward (one pixel at a time, shared)
            results = []
            for threads in (1, 2):
                torch.set_num_threads(threads)
                results.append((ext.forward(padded, pos, search, window),
                                ext.backward(padded, pos, upstream.float(), search, window,
                                             way=way)))
            d, grad_padded = results[0]
            assert torch.equal(results[1][0], d) and torch.equal(results[1][1], grad_padded)
            assert ((d.double() - ref).abs() <= 2e-6 * ref.abs() + 1e-12).all(), (search, window)
            x = image.clone().requires_grad_()  # fold the padding's gradient back, as the op does
            torch.nn.functional.pad(x, (p, p, p, p), mode='reflect').backward(grad_padded)
            assert rel_err(x.grad, ref_grad) <= 1e-4, (search, window, way)


def test_image_smaller_than_half_the_search_square_is_refused():
    mask = torch.ones(1, 1, 12, 30, dtype=torch.bool)
    with pytest.raises(ValueError, match=r'search//2\+1 = 13 .* got 12x30'):
        patch_distances(torch.rand(1, 3, 12, 30), mask, 25, 9)
    patch_distances(torch.rand(1, 3, 13, 13), torch.ones(1, 1, 13, 13, dtype=torch.bool), 25, 9)


def test_bad_sizes_and_shapes_are_refused():
    image, mask = torch.rand(1, 3, 20, 20), torch.ones(1, 1, 20, 20, dtype=torch.bool)
    with pytest.raises(ValueError, match='search must be a positive odd int'):
        patch_distances(image, mask, 24, 9)
    with pytest.raises(ValueError, match='window must be a positive odd int'):
        patch_distances(image, mask, 25, 0)
    # The op speaks of its own arguments; loss/ssl.py names the flags (test_ssl_loss.py).
    with pytest.raises(ValueError, match='window 11 is larger than the search square 9'):
        patch_distances(image, mask, 9, 11)
    with pytest.raises(ValueError, match=r'mask must be \[B, 1, H, W\]'):
        patch_distances(image, mask[:, :, :10], 9, 3)
    with pytest.raises(TypeError, match='floating point'):
        patch_distances((image * 255).to(torch.uint8), mask, 9, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(7)
    for dtype in (torch.float32, torch.float64):
        image = torch.rand(3, 3, 48, 40, generator=gen, dtype=dtype)
        mask = random_mask(image.shape, (200, 0, 90), gen)
        upstream = torch.randn(290, 625, generator=gen, dtype=dtype)
        xc = image.clone().requires_grad_()
        dc = patch_distances(xc, mask, 25, 9)
        dc.backward(upstream)
        xg = image.cuda().requires_grad_()
        dg = patch_distances(xg, mask.cuda(), 25, 9)
        dg.backward(upstream.cuda())
        assert rel_err(dg.cpu(), dc) <= 1e-5
        assert rel_err(xg.grad.cpu(), xc.grad) <= 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('shape, search, window, counts', [
    ((1, 2, 7, 8), 5, 3, (9,)),
    ((2, 1, 6, 6), 3, 3, (4, 7)),
])
def test_cuda_gradcheck_float64(shape, search, window, counts):
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(shape, generator=gen, dtype=torch.float64).cuda().requires_grad_()
    mask = random_mask(shape, counts, gen).cuda()
    # atomicAdd order varies between runs: allow rounding-level differences between backwards
    assert torch.autograd.gradcheck(lambda t: patch_distances(t, mask, search, window), (image,),
                                    nondet_tol=1e-10)


def cuda_against_cpu(image, mask, search, window, gen, grad_tol=1e-4):
    """The op on CUDA and on CPU for the same input view (any strides, any dtype)."""
    upstream = torch.randn(int((mask != 0).sum()), search * search, generator=gen)
    results = []
    for device in ('cpu', 'cuda'):
        x = (image.to(device) if device == 'cpu' else image.detach()).requires_grad_()
        d = patch_distances(x, mask.to(device), search, window)
        d.backward(upstream.to(device, d.dtype))
        results.append((d.cpu(), x.grad.cpu()))
    (dc, gc), (dg, gg) = results
    assert dg.shape == dc.shape and dg.dtype == dc.dtype and gg.dtype == gc.dtype
    assert rel_err(dg, dc) <= 1e-5
    assert rel_err(gg, gc) <= grad_tol


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cuda_input_forms_and_launch_limits():
    gen = torch.Generator().manual_seed(8)
    # non-contiguous views, the default sizes, an image without a masked pixel
    base = torch.rand(3, 3, 48, 100, generator=gen).cuda()
    mask = random_mask((3, 1, 48, 50), (300, 0, 120), gen)
    cuda_against_cpu(base[..., ::2], mask, 25, 9, gen)
    cuda_against_cpu(base[..., ::2].contiguous(memory_format=torch.channels_last), mask, 25, 9, gen)
    # bfloat16 input computed in float32 on both (gradients rounded to bfloat16)
    cuda_against_cpu(base[..., :50].to(torch.bfloat16), mask, 25, 9, gen, grad_tol=1e-2)
    # no masked pixel at all: no launch, zero gradient
    x = base.clone().requires_grad_()
    d = patch_distances(x, torch.zeros(3, 1, 48, 100, dtype=torch.bool, device='cuda'), 25, 9)
    assert d.shape == (0, 625)
    d.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    # more masked pixels (blocks) than the 65535 a grid's y/z dimension could hold
    big = torch.rand(2, 1, 200, 200, generator=gen).cuda()
    cuda_against_cpu(big, torch.ones(2, 1, 200, 200, dtype=torch.bool), 3, 3, gen)
    # squares beyond the default 48 KiB of shared memory (float64, search 51: both kernels)
    square = torch.rand(1, 3, 30, 30, generator=gen, dtype=torch.float64).cuda()
    cuda_against_cpu(square, random_mask(square.shape, (40,), gen), 51, 9, gen)
    torch.cuda.synchronize()


@pytest.mark.skipif(shutil.which('nvcc') is None, reason='nvcc is not installed')
@pytest.mark.parametrize('flags', [[], ['-std=c++20', '-arch=sm_90', '-Xptxas', '-v']],
                         ids=['default', 'sm_90'])
def test_cuda_kernels_compile_alone_with_nvcc(tmp_path, flags):
    """nvcc's default target, and the H200's sm_90 with the C++ standard torch builds with:
    no warning, and no register spills (ptxas -v)."""
    out = tmp_path / 'ssl_kernels.o'
    run = subprocess.run(['nvcc', '-c', *flags, '-Werror', 'all-warnings',
                          str(SOURCES / _build.CUDA_SOURCE), '-o', str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert out.stat().st_size > 0
    spills = re.findall(r'(\d+) bytes spill (?:stores|loads)', run.stdout + run.stderr)
    assert all(n == '0' for n in spills), run.stderr[-3000:]


# Host emulation of the CUDA runtime, enough to run ssl_kernels.cu's own kernels on the CPU:
# one std::thread per CUDA thread, __syncthreads as a block barrier, __shfl_down_sync through
# a warp barrier (a lane that skips it deadlocks, as divergent code must not use it),
# atomicAdd under a lock (counted), dynamic shared memory filled with garbage and limited to
# 48 KiB unless the launch opted in. Blocks run one after another.
EMULATED_RUNTIME = r"""
#pragma once
#include <algorithm>
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>
typedef int cudaError_t;
typedef void* cudaStream_t;
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorLaunchOutOfResources = 701 };
enum cudaDeviceAttr { cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
struct dim3 { unsigned x = 1, y = 1, z = 1; };
#define __global__
#define __device__
#define __restrict__
#define __launch_bounds__(n)
#define __align__(n) alignas(n)
namespace emu {
inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
inline std::barrier<>* block_barrier;
inline std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
inline std::vector<double> warp_values;
inline std::mutex atomic_lock;
inline unsigned char* smem;
inline size_t smem_limit = 48 * 1024, optin_limit = 227 * 1024;
inline int last_error = 0;
inline long long atomics = 0;
inline unsigned grid_cap = 0;
}  // namespace emu
using emu::blockDim; using emu::blockIdx; using emu::gridDim; using emu::threadIdx;
inline void __syncthreads() { emu::block_barrier->arrive_and_wait(); }
template <typename T> T __shfl_down_sync(unsigned mask, T v, unsigned off) {
  if (mask != 0xffffffffu) emu::last_error = cudaErrorInvalidValue;  // only full warps here
  const unsigned warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  double* values = emu::warp_values.data() + 32 * warp;
  values[lane] = static_cast<double>(v);
  emu::warp_barriers[warp]->arrive_and_wait();
  const T r = lane + off < 32 ? static_cast<T>(values[lane + off]) : v;
  emu::warp_barriers[warp]->arrive_and_wait();
  return r;
}
template <typename T> T atomicAdd(T* p, T v) {
  std::lock_guard<std::mutex> guard(emu::atomic_lock);
  ++emu::atomics;
  const T old = *p;
  *p = old + v;
  return old;
}
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) {
  *v = static_cast<int>(emu::optin_limit); return cudaSuccess; }
template <typename F> cudaError_t cudaFuncSetAttribute(F, cudaFuncAttribute, int v) {
  if (static_cast<size_t>(v) > emu::optin_limit) return cudaErrorInvalidValue;
  emu::smem_limit = v; return cudaSuccess; }
inline cudaError_t cudaGetLastError() {
  const int e = emu::last_error; emu::last_error = 0; return e; }
inline const char* cudaGetErrorString(cudaError_t e) { return e ? "emulated error" : "no error"; }
template <typename K, typename... Args>
void emu_launch(K kernel, unsigned grid, unsigned block, size_t bytes, cudaStream_t, Args... args) {
  const bool ok = bytes <= emu::smem_limit && block % 32 == 0 && block <= 1024 && grid > 0;
  emu::smem_limit = 48 * 1024;  // every launch past 48 KiB must opt in again
  if (!ok) { emu::last_error = cudaErrorLaunchOutOfResources; return; }
  const unsigned blocks = emu::grid_cap ? std::min(grid, emu::grid_cap) : grid;
  std::vector<unsigned char> shared(bytes ? bytes : 1, 0xCD);
  emu::smem = shared.data();
  emu::warp_values.assign(block, 0.0);
  for (unsigned b = 0; b < blocks; ++b) {
    std::barrier<> barrier(block);
    emu::block_barrier = &barrier;
    emu::warp_barriers.clear();
    for (unsigned w = 0; w < block / 32; ++w)
      emu::warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < block; ++t) threads.emplace_back([&, t] {
      threadIdx.x = t; blockIdx.x = b; blockDim.x = block; gridDim.x = blocks;
      kernel(args...);
    });
    for (auto& t : threads) t.join();
  }
}
extern "C" void emu_configure(unsigned grid_cap) { emu::grid_cap = grid_cap; }
extern "C" long long emu_atomics() { const long long n = emu::atomics; emu::atomics = 0; return n; }
"""


@pytest.fixture(scope='module')
def emulated_kernels(tmp_path_factory):
    """ssl_kernels.cu compiled as host C++ against EMULATED_RUNTIME (ctypes library)."""
    from torch.utils import cpp_extension
    compiler = cpp_extension.get_cxx_compiler()
    if shutil.which(compiler) is None:
        pytest.skip(f'no C++ compiler {compiler!r}')
    folder = tmp_path_factory.mktemp('emulated_cuda')
    (folder / 'cuda_runtime.h').write_text(EMULATED_RUNTIME)
    source = (SOURCES / _build.CUDA_SOURCE).read_text()
    # the only CUDA syntax a host compiler cannot take: the extern shared array, the launches
    source, shared = re.subn(r'extern __shared__[^;]*\bsmem\[\];',
                             'unsigned char* smem = emu::smem;', source)
    source, launches = re.subn(r'(\w+<T>)<<<(.*?)>>>\(', r'emu_launch(\1, \2, ', source,
                               flags=re.S)
    assert shared == 2 and launches == 2, 'ssl_kernels.cu changed shape: update this emulation'
    (folder / 'kernels.cpp').write_text(source)
    run = subprocess.run([compiler, '-std=c++20', '-O2', '-shared', '-fPIC', f'-I{folder}',
                          str(folder / 'kernels.cpp'), '-o', str(folder / 'kernels.so'),
                          '-lpthread'], capture_output=True, text=True, timeout=300)
    if run.returncode != 0 and '<barrier>' in run.stderr:
        pytest.skip('the C++ compiler has no <barrier>')
    assert run.returncode == 0, run.stderr[-3000:]
    return ctypes.CDLL(str(folder / 'kernels.so'))


def emulated_call(lib, name, *args):
    f = getattr(lib, name)
    f.restype = ctypes.c_int
    return f(*[ctypes.c_void_p(a.data_ptr()) if isinstance(a, torch.Tensor) else ctypes.c_int64(a)
               for a in args], ctypes.c_void_p(0))


# (B, C, H, W, search, window, masked pixels per image, dtype, blocks in the grid (0: one per
# masked pixel; fewer exercise the grid-stride loop))
EMULATED_CASES = [
    (2, 3, 20, 23, 7, 3, (7, 3), torch.float32, 0),
    (2, 3, 30, 28, 25, 9, (2, 1), torch.float64, 1),   # the defaults, one block for all
    (1, 3, 13, 13, 25, 9, (3,), torch.float32, 2),     # smallest image for search 25
    (1, 2, 9, 11, 5, 5, (6,), torch.float32, 0),       # window == search
    (1, 1, 10, 12, 11, 1, (5,), torch.float64, 0),     # window 1, one channel
    (1, 3, 30, 30, 51, 9, (2,), torch.float64, 0),     # both kernels past 48 KiB: opt-in
]


@pytest.mark.parametrize('case', EMULATED_CASES,
                         ids=lambda c: 'x'.join(map(str, c[:6])) + f'-{str(c[7])[6:]}')
def test_cuda_kernels_in_host_emulation_match_the_oracle(emulated_kernels, case):
    """The CUDA kernels' own code (index arithmetic, barriers, warp reduction, atomics, the
    shared-memory opt-in), run on the CPU against the oracle and the CPU op. No GPU needed;
    a barrier that only some threads reach makes this test hang, as the kernel would."""
    import torch.nn.functional as F
    b, c, h, w, search, window, counts, dtype, grid_cap = case
    gen = torch.Generator().manual_seed(sum(case[:6]))
    image = torch.rand(b, c, h, w, generator=gen, dtype=torch.float64)
    mask = random_mask(image.shape, counts, gen)
    p = search // 2
    padded = F.pad(image, (p, p, p, p), mode='reflect').to(dtype).contiguous()
    pos = torch.nonzero(mask[:, 0]).contiguous()
    n, hp, wp = pos.shape[0], padded.shape[2], padded.shape[3]
    suffix = 'f32' if dtype == torch.float32 else 'f64'
    emulated_kernels.emu_configure(ctypes.c_uint(grid_cap))

    out = torch.full((n, search * search), float('nan'), dtype=dtype)
    assert emulated_call(emulated_kernels, f'ssl_cuda_forward_{suffix}', padded, pos, out, n, c,
                         hp, wp, search, window) == 0
    ref = patch_distances_reference(image, mask, search, window)
    assert rel_err(out, ref) <= (1e-5 if dtype == torch.float32 else 1e-13)

    upstream = torch.randn(n, search * search, generator=gen, dtype=torch.float64)
    grad_padded = torch.zeros_like(padded)
    assert emulated_call(emulated_kernels, f'ssl_cuda_backward_{suffix}', padded, pos,
                         upstream.to(dtype), grad_padded, n, c, hp, wp, search, window) == 0
    assert emulated_kernels.emu_atomics() <= n * c * search * search  # one per square pixel
    cpu = _build.load().backward(padded, pos, upstream.to(dtype), search, window, 0)
    assert rel_err(grad_padded, cpu) <= (1e-5 if dtype == torch.float32 else 1e-13)
    x = image.clone().requires_grad_()
    patch_distances_reference(x, mask, search, window).backward(upstream)
    folded = image.clone().requires_grad_()
    F.pad(folded, (p, p, p, p), mode='reflect').backward(grad_padded.double())
    assert rel_err(folded.grad, x.grad) <= (1e-4 if dtype == torch.float32 else 1e-12)


@pytest.mark.slow
def test_binding_compiles_with_the_cuda_branch(tmp_path):
    """binding.cpp with SSL_WITH_CUDA (the GPU build) parses against the torch headers."""
    from torch.utils import cpp_extension
    compiler = cpp_extension.get_cxx_compiler()
    if shutil.which(compiler) is None:
        pytest.skip(f'no C++ compiler {compiler!r}')
    includes = [f'-I{p}' for p in cpp_extension.include_paths()]
    python_include = subprocess.run(
        [sys.executable, '-c', 'import sysconfig; print(sysconfig.get_paths()["include"])'],
        capture_output=True, text=True).stdout.strip()
    run = subprocess.run(
        [compiler, '-std=c++20', '-fsyntax-only', '-DSSL_WITH_CUDA', '-DTORCH_EXTENSION_NAME=x',
         '-DTORCH_API_INCLUDE_EXTENSION_H', *includes, f'-I{python_include}',
         str(SOURCES / 'binding.cpp')],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]


def test_a_build_failure_is_one_user_error_naming_the_log(tmp_path):
    source = tmp_path / 'broken.cpp'
    source.write_text('#error deliberately broken for the test\n')
    folder = tmp_path / 'build'
    with pytest.raises(utility.UserError) as info:
        _build.build_extension('ssl_broken_for_test', [source], folder)
    message = str(info.value)
    assert '\n' not in message
    assert message.startswith('building the SSL op failed (')
    assert 'deliberately broken' in message
    assert str(folder / 'build.log') in message
    assert 'deliberately broken' in (folder / 'build.log').read_text()


@pytest.mark.slow
def test_bench_runs_and_reports_the_op():
    run = subprocess.run([sys.executable, str(BENCH), '--skip_unfold', '--repeat', '1'],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line.split() for line in run.stdout.splitlines() if ' op ' in line]
    assert [row[-7] for row in rows] == ['1638', '2394']  # N of the two cases
    # ms, CPU ms, extra MB, and the rate against the box-sum floor (its flops / ms)
    assert all(float(row[-5]) > 0 and float(row[-4]) > 0 and float(row[-3]) < 100
               for row in rows)
    assert all(abs(float(row[-1]) - 296.96 / float(row[-5])) < 0.01 + 0.01 * float(row[-1])
               for row in rows)
    assert 'box-sum floor of one 1x3x128x128 case: 297 Mflop' in run.stdout
    # the machine kind: the CPU model and the vectors the kernels were built for
    machine = next(line for line in run.stdout.splitlines() if line.startswith('machine: '))
    assert re.search(r', (128|256|512)-bit vectors \((SSE2/NEON|AVX2|AVX-512)\)$', machine)
    cuda = subprocess.run([sys.executable, str(BENCH), '--cuda'], capture_output=True,
                          text=True, timeout=120)
    assert cuda.returncode == 0 and 'CUDA' in cuda.stdout


@pytest.mark.slow
@pytest.mark.parametrize('cflags', ['', '-march=x86-64'], ids=['native', 'sse2'])
def test_bench_ways_times_both_ways_of_the_backward(tmp_path, cflags):
    """--ways, and with --cflags the op built for another instruction set (here 4-lane
    vectors) into a folder of its own."""
    if cflags and platform.machine() not in ('x86_64', 'AMD64'):
        pytest.skip('x86 flags')
    env = {**os.environ, 'SSL_OPS_CACHE': str(tmp_path)} if cflags else None
    run = subprocess.run([sys.executable, str(BENCH), '--ways', '--repeat', '1',
                          f'--cflags={cflags}'], capture_output=True, text=True, timeout=600,
                         env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f'extra compiler flags: {cflags or "none"}' in run.stdout
    if cflags:
        assert any(p.name.startswith('flags-') for p in tmp_path.iterdir())
    rows = [line.split() for line in run.stdout.splitlines() if line.rstrip()[-1:].isdigit()
            and 'x ' in line]
    # 6 random masks, the edge mask, the training batch at stride 3 and 1
    assert len(rows) == 9, run.stdout
    # columns from the right: N, windows per covered pixel, per pixel ms, shared ms, ratio, auto
    windows = [float(row[-5]) for row in rows[:6]]
    assert windows == sorted(windows) and windows[0] < 2 < 10 < windows[-1]
    assert all(float(row[-4]) > 0 and float(row[-3]) > 0 and float(row[-1]) > 0 for row in rows)


def test_bench_against_an_unknown_revision_is_one_line_exit_2():
    run = subprocess.run([sys.executable, str(BENCH), '--against', 'no-such-revision-xyz'],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.count('\n') == 1 and 'is not a commit of this repository' in run.stderr


@pytest.mark.slow
@pytest.mark.parametrize('cflags', ['', '-march=x86-64'], ids=['native', 'sse2'])
def test_bench_against_a_revision_builds_it_from_git_and_compares(tmp_path, cflags):
    """--against HEAD: the committed kernel, built from git into the cache folder, timed beside
    the working tree's; where the two are the same code they agree exactly. With --cflags both
    are built with those flags (here for 4-lane vectors), each into a folder of its own."""
    if cflags and platform.machine() not in ('x86_64', 'AMD64'):
        pytest.skip('x86 flags')
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=BENCH.parents[1],
                          capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip('not a git checkout')
    changed = subprocess.run(['git', 'status', '--porcelain', '--', 'src/loss/ssl_cuda'],
                             cwd=BENCH.parents[1], capture_output=True, text=True).stdout
    env = {**os.environ, 'SSL_OPS_CACHE': str(tmp_path)}
    run = subprocess.run([sys.executable, str(BENCH), '--against', 'HEAD', '--repeat', '1',
                          f'--cflags={cflags}'], capture_output=True, text=True, timeout=900,
                         env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f'extra compiler flags: {cflags or "none"}' in run.stdout
    assert ('128-bit vectors (SSE2/NEON)' if cflags else '-bit vectors (') in run.stdout
    folders = [p.name for p in tmp_path.iterdir()]
    rev = 'rev-' + head.stdout.strip()[:12]
    assert any(name.startswith(rev) and ('-flags-' in name) == bool(cflags) for name in folders)
    if cflags:
        assert any(name.startswith('flags-') for name in folders)
    rows = [line for line in run.stdout.splitlines() if 'agreement' not in line and ' D ' in line]
    assert len(rows) == 5  # random, edges, 1% random, training batch at stride 3 and 1
    for line in rows:
        d_err, g_err = re.search(r'D ([0-9.e+-]+), grad ([0-9.e+-]+)', line).groups()
        assert float(d_err) < 1e-5 and float(g_err) < 1e-4
        if not changed:  # the same sources: the same numbers
            assert float(d_err) == 0 and float(g_err) == 0
    fused = [line for line in run.stdout.splitlines() if line.startswith('fused SSL loss')]
    assert len(fused) == 2, run.stdout  # stride 3 and 1
    for line in fused:
        l_err, g_err = re.search(r'loss ([0-9.e+-]+), grad ([0-9.e+-]+)', line).groups()
        assert float(l_err) < 1e-5
        if not changed:
            assert float(l_err) == 0 and float(g_err) == 0
