"""realesrgan: Real-ESRGAN's second-order degradation (x4plus training ranges).

Source: xinntao/Real-ESRGAN ``options/train_realesrgan_x4plus.yml`` (ranges and
probabilities), ``realesrgan/data/realesrgan_dataset.py`` (kernel sizes 7..21, sinc cutoff
rule, kernels padded to 21) and ``realesrgan/models/realesrgan_model.py`` (order of the
operations; the degradation starts from the USM-sharpened HR).
"""
from degradation._second_order import SecondOrder

SOURCE = 'Real-ESRGAN options/train_realesrgan_x4plus.yml'

_KERNELS = dict(kernel_sizes=tuple(range(7, 22, 2)),
                kernel_list=('iso', 'aniso', 'generalized_iso', 'generalized_aniso',
                             'plateau_iso', 'plateau_aniso'),
                kernel_prob=(0.45, 0.25, 0.12, 0.03, 0.12, 0.03),
                sinc_prob=0.1, betag_range=(0.5, 4.0), betap_range=(1.0, 2.0))

PARAMS = {
    'usm_before': True,             # feed_data blurs self.gt_usm
    'kernel_pad': 21,
    'stage1': dict(_KERNELS, blur_sigma=(0.2, 3.0),
                   resize_prob=(0.2, 0.7, 0.1), resize_range=(0.15, 1.5),
                   gaussian_noise_prob=0.5, noise_range=(1.0, 30.0),
                   poisson_scale_range=(0.05, 3.0), gray_noise_prob=0.4, jpeg_range=(30, 95)),
    'second_blur_prob': 0.8,
    'stage2': dict(_KERNELS, blur_sigma=(0.2, 1.5),
                   resize_prob=(0.3, 0.4, 0.3), resize_range=(0.3, 1.2),
                   gaussian_noise_prob=0.5, noise_range=(1.0, 25.0),
                   poisson_scale_range=(0.05, 2.5), gray_noise_prob=0.4, jpeg_range=(30, 95)),
    'final': dict(sinc_prob=0.8, kernel_sizes=tuple(range(7, 22, 2))),
}


def make_degradation(scale):
    return SecondOrder(PARAMS, scale)
