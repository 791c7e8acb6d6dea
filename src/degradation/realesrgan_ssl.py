"""realesrgan_ssl: the lighter second-order degradation of the SSL paper's RealESRGAN+SSL.

Source: ChrisDud0257/SSL ``GAN-Based-SR/options/train/RealESRGANSSL/train_RealESRGANSSL_x4.yml``
(ranges) and ``basicsr/data/my_realesrgan_image_mask_dataset.py`` (kernel sizes
``2 v + 1`` for v in [blur_kernel_size_min, blur_kernel_size_max]: 3..7 in the first stage,
3..5 in the second and for the final sinc; kernels padded to 9).  No sharpening before the
degradation (``Sharpen_before_degra: False``).
"""
from degradation._second_order import SecondOrder

SOURCE = 'ChrisDud0257/SSL GAN-Based-SR/options/train/RealESRGANSSL/train_RealESRGANSSL_x4.yml'

PARAMS = {
    'usm_before': False,
    'kernel_pad': 9,
    'stage1': dict(kernel_sizes=(3, 5, 7), kernel_list=('iso', 'aniso'), kernel_prob=(0.7, 0.3),
                   sinc_prob=0.01, blur_sigma=(0.1, 0.6), betag_range=(0.1, 2.0),
                   betap_range=(0.1, 1.0),
                   resize_prob=(0.1, 0.85, 0.05), resize_range=(0.9, 1.1),
                   gaussian_noise_prob=0.5, noise_range=(1.0, 8.0),
                   poisson_scale_range=(0.05, 0.5), gray_noise_prob=0.2, jpeg_range=(85, 95)),
    'second_blur_prob': 0.8,
    'stage2': dict(kernel_sizes=(3, 5), kernel_list=('iso', 'aniso'), kernel_prob=(0.7, 0.3),
                   sinc_prob=0.01, blur_sigma=(0.1, 0.4), betag_range=(0.1, 2.0),
                   betap_range=(0.1, 1.0),
                   resize_prob=(0.1, 0.85, 0.05), resize_range=(0.9, 1.1),
                   gaussian_noise_prob=0.5, noise_range=(0.0, 4.0),
                   poisson_scale_range=(0.0, 0.3), gray_noise_prob=0.2, jpeg_range=(87, 95)),
    'final': dict(sinc_prob=0.1, kernel_sizes=(3, 5)),
}


def make_degradation(scale):
    return SecondOrder(PARAMS, scale)
