"""mix: the SSL paper's mixed real-world test sets, Real-ESRGAN (60 %) or BSRGAN (40 %) per LR.

Source: ChrisDud0257/SSL ``GAN-Based-SR/scripts/data_preparation/generate_RealESRGAN+BSRGAN_LR.py``
with ``GAN-Based-SR/options/generate/generate_RealESRGAN+BSRGAN_LR.yml``.  Each LR image draws
its group: with probability 0.6 (``random.random() > 0.4``) Real-ESRGAN's degradation with
the YAML's ranges (``REALESRGAN``: light blur, noise and JPEG; the second stage with
probability 0.2 only, otherwise the first stage is resized straight to the LR size), else
``degradation_bsrgan_nocrop`` of ``utils_parameter_blindsr.py`` with the YAML's BSRGAN
block (``bsrgan.GENERATE``).  ``src/degrade.py --degradation mix --variants K`` writes K such
LR images per HR, named ``<stem>+<k>x<s>.png`` (the official multi-LR datasets map
``<stem>+<k>`` back to ``<stem>``).

Differences from the script: the script's seed call is commented out (its sets cannot be
regenerated); here every LR is drawn from (seed, scale, ``<stem>+<k>``).  The script's
first resize passes ``scale_factor`` to ``F.interpolate`` (output size floor(factor * size),
sampling positions from the factor); here the size is computed the same way and the
sampling positions follow from it.  JPEG qualities are integers (libjpeg) drawn from the
ranges, where the script's DiffJPEG takes a real quality.
"""
import torch

from degradation import bsrgan
from degradation._second_order import SecondOrder, key_rng

SOURCE = ('ChrisDud0257/SSL GAN-Based-SR/scripts/data_preparation/'
          'generate_RealESRGAN+BSRGAN_LR.py, options/generate/generate_RealESRGAN+BSRGAN_LR.yml')

REALESRGAN_PROB = 0.6
_GROUP = 2                       # key stream of the group draw

# The YAML's RealESRGAN block: kernel sizes 2 v + 1 for v in [1, 3] (first stage) and [1, 2]
# (second stage and the final sinc); no sharpening before the degradation.
REALESRGAN = {
    'usm_before': False,
    'kernel_pad': 21,
    'second_order_prob': 0.2,
    'stage1': dict(kernel_sizes=(3, 5, 7), kernel_list=('iso', 'aniso'), kernel_prob=(0.7, 0.3),
                   sinc_prob=0.01, blur_sigma=(0.1, 0.4), betag_range=(0.1, 0.7),
                   betap_range=(0.1, 0.7),
                   resize_prob=(0.1, 0.85, 0.05), resize_range=(0.8, 1.1),
                   gaussian_noise_prob=0.5, noise_range=(1.0, 8.0),
                   poisson_scale_range=(0.05, 0.5), gray_noise_prob=0.2, jpeg_range=(87, 95)),
    'second_blur_prob': 0.8,
    'stage2': dict(kernel_sizes=(3, 5), kernel_list=('iso', 'aniso'), kernel_prob=(0.7, 0.3),
                   sinc_prob=0.01, blur_sigma=(0.1, 0.3), betag_range=(0.1, 0.5),
                   betap_range=(0.1, 0.5),
                   resize_prob=(0.1, 0.85, 0.05), resize_range=(0.8, 1.1),
                   gaussian_noise_prob=0.5, noise_range=(0.0, 5.0),
                   poisson_scale_range=(0.0, 0.4), gray_noise_prob=0.2, jpeg_range=(90, 95)),
    'final': dict(sinc_prob=0.1, kernel_sizes=(3, 5)),
}

PARAMS = {'realesrgan_prob': REALESRGAN_PROB, 'realesrgan': REALESRGAN,
          'bsrgan': bsrgan.GENERATE}


def group(sample_key):
    """'realesrgan' or 'bsrgan': the group of the LR drawn from ``sample_key``."""
    return 'realesrgan' if key_rng(sample_key, _GROUP).random() < REALESRGAN_PROB else 'bsrgan'


class Mix:
    """``(lr, params) = deg(hr, batch_key, sample_keys)``; each sample degraded alone by its
    group's pipeline (params carry ``'group'``)."""

    def __init__(self, scale):
        self.scale = int(scale)
        self.parts = {'realesrgan': SecondOrder(REALESRGAN, scale),
                      'bsrgan': bsrgan.BSRGAN(bsrgan.GENERATE, scale)}

    def __call__(self, hr, batch_key, sample_keys):
        if len(sample_keys) != hr.shape[0]:
            raise ValueError(f'{len(sample_keys)} sample keys for a batch of {hr.shape[0]}')
        out, params = [], []
        for i, key in enumerate(sample_keys):
            g = group(key)
            # the one-image batch's per-batch draws come from the sample key extended
            lr, p = self.parts[g](hr[i:i + 1], (*key, _GROUP), [key])
            out.append(lr)
            params.append(dict(p[0], group=g))
        return torch.cat(out), params


def describe(sample):
    """Short lines of one sample's parameters (for the preview)."""
    from degradation import _second_order
    if sample['group'] == 'bsrgan':
        return ['BSRGAN'] + bsrgan.describe(sample)
    return ['Real-ESRGAN'] + _second_order.describe(sample)


def make_degradation(scale):
    return Mix(scale)
