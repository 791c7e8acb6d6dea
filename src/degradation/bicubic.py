"""bicubic: MATLAB-compatible bicubic downscaling (the default; the literature's benchmark LR).

The LR images come from the dataset (``LR_bicubic`` folders, or made from the HR with
``imresize`` and cached; see ``data/_srdata.py``), so there is nothing to synthesise here.
"""
SOURCE = 'MATLAB imresize(1/s), bicubic with antialiasing (EDSR-PyTorch LR_bicubic)'


def make_degradation(scale):
    return None
