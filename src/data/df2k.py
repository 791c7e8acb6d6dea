"""DF2K: DIV2K's 800 training images and Flickr2K's 2650, as multiscale 512x512
sub-images (the training set of the SSL repository's ESRGAN, LDL and SwinIR-GAN recipes).

Made once by ``python src/prepare_data.py DF2K --dir_data D`` from
``D/DIV2K/DIV2K_train_HR/*.png`` and ``D/Flickr2K/Flickr2K_HR/*.png``; read from
``D/DF2K/multiscale_HR_sub_512/`` (see _prepared.py).
"""
from data import _prepared

NAME = 'DF2K'


def make_dataset(args, name, train, rank=0):
    return _prepared.PreparedSet(args, NAME, train, rank)
