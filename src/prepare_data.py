"""Write the training sub-images of the BasicSR recipes once: DF2K or OST.

    python src/prepare_data.py DF2K --dir_data D      # D/DIV2K/DIV2K_train_HR + D/Flickr2K/Flickr2K_HR
    python src/prepare_data.py OST --dir_data D       # D/OST/OutdoorSceneTrain_v2/<category>/

writes ``D/<NAME>/multiscale_HR_sub_512/*.png``, what ``--data_train DF2K+OST`` reads.  The
steps are those of the SSL repository's GAN-Based-SR/scripts/data_preparation/
(generate_multiscale_img.py, then extract_subimages.py with crop 512, step 256):

1. each HR image in several sizes, PIL Lanczos: x0.75, x0.6 and x1/3 when the short side
   stays >= 512 (``<stem>T0``, ``T1``, ``T2``), the short side at 512 (``<stem>S``, the long
   side int(512 * aspect)), and the image itself when its short side is >= 512;
2. each of those cut into 512x512 crops at rows and columns 0, 256, 512, ... plus a last
   crop flush with the bottom / right edge when the grid misses pixels there; crops are
   numbered from 1 row by row: ``<stem>T0_s001.png``, ...

The output is written into a temporary folder that is renamed when complete; an existing
output folder is never touched (remove it to prepare again).
"""
import argparse
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import utility  # noqa: E402
from data import _image, _prepared  # noqa: E402

CROP, STEP, SHORTEST = 512, 256, 512
SCALES = (0.75, 0.6, 1 / 3)
# name -> ([(source folder relative to --dir_data, search sub-folders)], what to download)
SOURCES = {
    'DF2K': ([('DIV2K/DIV2K_train_HR', False), ('Flickr2K/Flickr2K_HR', False)],
             'download DIV2K_train_HR (DIV2K) into {d}/DIV2K/DIV2K_train_HR/ and Flickr2K_HR '
             '(Flickr2K.tar) into {d}/Flickr2K/Flickr2K_HR/'),
    'OST': ([('OST/OutdoorSceneTrain_v2', True)],
            'download OutdoorSceneTrain_v2 (the OST training set of SFTGAN) and unpack it into '
            '{d}/OST/OutdoorSceneTrain_v2/'),
}


def sizes(width, height):
    """[(suffix, (w, h))] of step 1 for an image of width x height (suffix '' = as is)."""
    out = [(f'T{i}', (int(width * s), int(height * s))) for i, s in enumerate(SCALES)
           if min(int(width * s), int(height * s)) >= SHORTEST]
    if width < height:
        out.append(('S', (SHORTEST, int(SHORTEST * (height / width)))))
    else:
        out.append(('S', (int(SHORTEST * (width / height)), SHORTEST)))
    if min(width, height) >= SHORTEST:
        out.append(('', (width, height)))
    return out


def starts(length):
    """Crop offsets along a side of ``length`` (step 2)."""
    found = list(range(0, length - CROP + 1, STEP))
    if length - (found[-1] + CROP) > 0:
        found.append(length - CROP)
    return found


def prepare_image(path, out_dir):
    """Write the sub-images of one HR image; returns how many."""
    from PIL import Image
    with Image.open(path) as img:
        img.load()
        count = 0
        for suffix, size in sizes(*img.size):
            version = img if suffix == '' else img.resize(size, resample=Image.LANCZOS)
            index = 0
            for top in starts(size[1]):
                for left in starts(size[0]):
                    index += 1
                    crop = version.crop((left, top, left + CROP, top + CROP))
                    crop.save(out_dir / f'{path.stem}{suffix}_s{index:03d}.png')
                    count += 1
    return count


def source_images(name, dir_data):
    folders, hint = SOURCES[name]
    found = []
    for rel, recursive in folders:
        folder = Path(dir_data) / rel
        files = ([p for p in sorted(folder.rglob('*')) if p.is_file()] if recursive else
                 sorted(folder.iterdir())) if folder.is_dir() else []
        files = [p for p in files if _image.is_image_file(p)]
        if not files:
            raise utility.UserError(f'{name}: no images in {folder}; '
                                    f'{hint.format(d=dir_data)}')
        found += files
    return found


def run(argv=None):
    p = argparse.ArgumentParser(prog='prepare_data.py', description=__doc__.split('\n')[0])
    p.add_argument('name', choices=sorted(SOURCES), help='the training set to prepare')
    p.add_argument('--dir_data', type=str, default=str(utility.DEFAULT_DATA_DIR),
                   help='folder holding the downloaded sets; the output goes there too')
    p.add_argument('--workers', type=int, default=os.cpu_count() or 1,
                   help='processes writing sub-images')
    args = p.parse_args(argv)
    out = Path(args.dir_data) / args.name / _prepared.SUBFOLDER
    if out.exists():
        raise utility.UserError(f'{out} already exists: {args.name} is prepared; remove that '
                                f'folder to prepare it again')
    images = source_images(args.name, args.dir_data)
    partial = out.with_name(out.name + '.partial')
    if partial.exists():
        shutil.rmtree(partial)          # left by an interrupted run of this command
    partial.mkdir(parents=True)
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            total = sum(pool.map(prepare_image, images, [partial] * len(images)))
    else:
        total = sum(prepare_image(path, partial) for path in images)
    os.replace(partial, out)
    print(f'{args.name}: {total} sub-images of {CROP}x{CROP} from {len(images)} images in {out}')
    return 0


def main(argv=None):
    return utility.run_cli(run, 'prepare_data.py', argv)


if __name__ == '__main__':
    sys.exit(main())
