"""OST: the OutdoorSceneTraining images of SFTGAN (Wang et al. 2018), as multiscale 512x512
sub-images (with DF2K, the training set of the SSL repository's ESRGAN and Real-ESRGAN
recipes: ``--data_train DF2K+OST``).

Made once by ``python src/prepare_data.py OST --dir_data D`` from every image under
``D/OST/OutdoorSceneTrain_v2/`` (its category folders: animal, building, ...); read from
``D/OST/multiscale_HR_sub_512/`` (see _prepared.py).
"""
from data import _prepared

NAME = 'OST'


def make_dataset(args, name, train, rank=0):
    return _prepared.PreparedSet(args, NAME, train, rank)
