"""Make a seeded, reproducible degraded test set from a benchmark folder's HR images.

    python src/degrade.py --dir_data D --data_test Set5 --scale 4 --degradation realesrgan --seed 0

writes ``D/benchmark/Set5/LR_realesrgan/X4/<img>x4.png`` (from the HR cropped to a multiple of
the scale, as for bicubic) and ``manifest.json`` in the same folder: every drawn parameter
per image, the preset and its parameters, the seed and the project version.  Every draw is
a function of (seed, scale, image name), computed on the CPU in float32, so the same command
writes byte-identical files on any run and any number of threads.  ``main.py --degradation
realesrgan --data_test Set5`` then evaluates on these LR images.

A folder already holding a set made with other settings (another seed, preset or project
version, or files without a manifest) is never replaced: results measured on it would change
without a word.  The command is refused; the same settings write the same bytes again.

``--degradation mix --variants K`` writes K LR images per HR, ``<img>+<k>x4.png`` for k = 0..K-1,
each drawn from (seed, scale, ``<img>+<k>``) and each Real-ESRGAN- or BSRGAN-degraded (see
src/degradation/mix.py); the manifest names each one's HR image and group, and evaluation
maps ``<img>+<k>`` back to ``<img>``.

``--preview out.png`` also writes a picture of one image: HR, bicubic LR and a few degraded
LR (the first is the test set's) with their drawn parameters.
"""
import hashlib
import json
import os
import sys

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import imageops  # noqa: E402
import lr_set  # noqa: E402
import option  # noqa: E402
import utility  # noqa: E402


def build_parser():
    p = option._Parser(prog='degrade.py', description='Write a seeded degraded LR test set '
                '(LR_<degradation>/X<s>/ + manifest.json) next to a benchmark folder\'s HR.')
    p.add_argument('--dir_data', type=str, default=str(utility.DEFAULT_DATA_DIR),
                   help='dataset root holding benchmark/<Name>/HR')
    p.add_argument('--data_test', type=str, required=True,
                   help='benchmark folder name(s) joined by "+", e.g. Set5+Set14')
    p.add_argument('--scale', type=str, default='4', help='scale(s) joined by "+"')
    p.add_argument('--degradation', type=str, default='realesrgan',
                   help='preset: a file name in src/degradation/ other than bicubic')
    p.add_argument('--seed', type=option._seed, default=0, help='random seed of the test set')
    p.add_argument('--variants', type=int, default=1,
                   help='LR versions per HR image (--degradation mix only): <img>+<k>x<s>.png')
    p.add_argument('--preview', type=str, default='',
                   help='also write a PNG grid of one image: HR, bicubic LR, degraded LR')
    p.add_argument('--preview_image', type=str, default='',
                   help='image stem for --preview (default: the first image)')
    p.add_argument('--preview_count', type=int, default=3,
                   help='degraded variants in the preview (the first is the test set\'s)')
    return p


def _parse(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.scale = [int(s) for s in args.scale.split('+')]
    except ValueError:
        parser.error(f'--scale {args.scale!r} must be integers joined by "+", e.g. 4 or 2+4')
    if any(s < 1 for s in args.scale):
        parser.error('--scale values must be >= 1')
    args.data_test = [n.strip() for n in args.data_test.split('+')]
    if not all(args.data_test):
        parser.error('--data_test has an empty entry; join names with "+"')
    if not 1 <= args.preview_count <= 8:
        parser.error('--preview_count must be in 1..8')
    if args.variants < 1:
        parser.error('--variants must be >= 1')
    if args.variants != 1 and args.degradation.lower() != 'mix':
        parser.error(f'--variants {args.variants} needs --degradation mix (one LR per HR '
                     f'for {args.degradation}); leave --variants out')
    return args


def project_version():
    return utility.VERSION


def version_name(stem, k):
    """The name of LR version k of HR image ``stem`` in a multi-version set (``stem+k``)."""
    return f'{stem}+{k}'


def degrade_image(deg, hr_uint8, seed, scale, name, variant=0):
    """(lr uint8 [h, w, 3], params dict) of one HR uint8 [H, W, 3] (cropped to a multiple)."""
    import numpy as np
    import torch

    import degradation
    h, w = hr_uint8.shape[0] // scale * scale, hr_uint8.shape[1] // scale * scale
    if h == 0 or w == 0:
        raise utility.UserError(f'image {name} ({hr_uint8.shape[1]}x{hr_uint8.shape[0]}) is '
                                f'smaller than the scale {scale}; remove it')
    hr = torch.from_numpy(np.ascontiguousarray(hr_uint8[:h, :w].transpose(2, 0, 1)))
    hr = hr.to(torch.float32)[None] / 255.0
    batch_key, sample_keys = degradation.test_keys(seed, scale, name, variant)
    lr, params = deg(hr, batch_key, sample_keys)
    lr = imageops.to_uint8(lr[0], 1).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(lr), params[0]


def _png_bytes(arr):
    import io

    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format='PNG')
    return buffer.getvalue()


def _read_hr(path):
    from data import _image
    return _image.set_channels(_image.read_image(path), 3)


def make_test_set(dir_data, name, scale, preset_name, seed, log=print, variants=1):
    """Write LR_<preset>/X<scale>/ and its manifest for benchmark ``name``; returns its folder.

    ``variants`` (mix): LR versions per HR, named ``<stem>+<k>``, each keyed by its name.
    """
    import degradation
    from data import _srdata
    folder = (utility.Path(dir_data) / 'benchmark' / name).resolve()
    hr_dir = folder / 'HR'
    if not hr_dir.is_dir():
        raise utility.UserError(f'{hr_dir} does not exist; put the HR images of {name} there '
                                f'or set --dir_data to the folder that holds benchmark/{name}/HR')
    paths = _srdata.list_images(hr_dir)
    if not paths:
        raise utility.UserError(f'{hr_dir} holds no image files; put the HR images of {name} '
                                'there')
    module = degradation.load(preset_name)
    deg = module.make_degradation(scale)
    if deg is None:
        raise utility.UserError(f'--degradation {preset_name} needs no generated test set '
                                '(main.py makes bicubic LR itself); choose e.g. realesrgan')
    out_dir = folder / f'LR_{preset_name.lower()}' / f'X{scale}'
    multi = preset_name.lower() == 'mix'
    settings = {'dataset': name, 'scale': scale, 'degradation': preset_name.lower(),
                'source': module.SOURCE, 'preset': getattr(module, 'PARAMS', {}),
                'seed': seed, 'project_version': project_version()}
    if multi:
        settings['variants'] = variants
    refuse_replacing(out_dir, settings)
    images = {}
    for path in paths:
        hr = _read_hr(path)
        for k in range(variants if multi else 1):
            lr_name = version_name(path.stem, k) if multi else path.stem
            lr, params = degrade_image(deg, hr, seed, scale, lr_name)
            png = _png_bytes(lr)
            utility.atomic_write_bytes(out_dir / f'{lr_name}x{scale}.png', png)
            images[lr_name] = {'file': f'{lr_name}x{scale}.png',
                               'lr_size': [lr.shape[1], lr.shape[0]], 'params': params,
                               'sha256': hashlib.sha256(png).hexdigest()}
            if multi:
                images[lr_name].update(hr=path.stem, variant=k, group=params['group'])
    if multi:                          # derived from the images (not a setting)
        groups = [im['group'] for im in images.values()]
        settings['groups'] = {g: groups.count(g) for g in sorted(set(groups))}
    manifest = {**settings,
                'command': (f'python src/degrade.py --dir_data {dir_data} --data_test {name} '
                            f'--scale {scale} --degradation {preset_name.lower()} --seed {seed}'
                            + (f' --variants {variants}' if multi else '')),
                'images': images}
    utility.atomic_write_text(out_dir / 'manifest.json',
                              json.dumps(manifest, indent=1, sort_keys=True) + '\n')
    log(f'{name} x{scale}: {len(images)} LR images of {len(paths)} HR -> {out_dir}')
    return out_dir


def refuse_replacing(out_dir, settings):
    """UserError when ``out_dir`` holds a set made with other ``settings`` (the manifest's
    entries other than images and command), or files without a manifest: evaluations that
    read it would change without a word.  An empty or absent folder, or one made with the
    same settings (rewritten byte for byte), passes."""
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    old = lr_set.read_manifest(out_dir)
    settings = json.loads(json.dumps(settings))      # as read back: tuples become lists
    if old is None:
        raise utility.UserError(
            f'{out_dir} already holds files but no {lr_set.MANIFEST} (made by hand, or by an '
            f'interrupted run); it is not replaced: move it away or delete it, then run again')
    # 'groups' (mix) is counted from the images, not a setting
    changed = [k for k in sorted((set(settings) | set(old)) - {'images', 'command', 'groups'})
               if old.get(k) != settings.get(k)]
    if changed:
        was = ', '.join(f'{k} {json.dumps(old.get(k), sort_keys=True)[:40]}' for k in changed)
        now = ', '.join(f'{k} {json.dumps(settings.get(k), sort_keys=True)[:40]}' for k in changed)
        raise utility.UserError(
            f'{out_dir} holds a test set made with {was} (this command: {now}); it is not '
            f'replaced, so that results measured on it keep their meaning: delete that folder '
            f'first to replace it, or make the new set under another --dir_data (a copy of '
            f'benchmark/{settings["dataset"]}/HR)')


def write_preview(path, dir_data, name, scale, preset_name, seed, image='', count=3):
    """A PNG grid: HR | bicubic LR | ``count`` degraded LR (LR shown enlarged x scale)."""
    import numpy as np
    from PIL import Image, ImageDraw

    import degradation
    from degradation import _second_order
    from data import _srdata
    hr_dir = utility.Path(dir_data).resolve() / 'benchmark' / name / 'HR'
    paths = _srdata.list_images(hr_dir)
    chosen = [p for p in paths if p.stem == image] if image else paths[:1]
    if not chosen:
        raise utility.UserError(f'--preview_image {image!r} is not in {hr_dir}; choose one of '
                                f'{", ".join(p.stem for p in paths[:10])}')
    src = chosen[0]
    hr = _read_hr(src)
    h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
    hr = hr[:h, :w]
    module = degradation.load(preset_name)
    describe = getattr(module, 'describe', _second_order.describe)
    deg = module.make_degradation(scale)
    multi = preset_name.lower() == 'mix'
    tiles = [('HR', [f'{src.stem} {w}x{h}'], hr),
             (f'bicubic x{scale}', ['MATLAB imresize'], _srdata.bicubic_lr(hr, scale))]
    for v in range(count):
        if multi:       # the test set's first versions
            lr, params = degrade_image(deg, hr, seed, scale, version_name(src.stem, v))
            title = f'{preset_name} {version_name(src.stem, v)}'
        else:
            lr, params = degrade_image(deg, hr, seed, scale, src.stem, variant=v)
            title = f'{preset_name} ' + ('(test set)' if v == 0 else f'variant {v}')
        tiles.append((title, describe(params), lr))
    # A centre crop (legible beside its parameters); LR tiles enlarged (nearest) to the HR
    # crop so that pixels are comparable side by side.
    c = min(h, w, 320) // scale * scale
    y0, x0 = (h - c) // 2 // scale, (w - c) // 2 // scale
    cropped = []
    for title, lines, img in tiles:
        f = scale if img.shape[0] == h else 1          # HR coordinates or LR coordinates
        n = c // scale * f
        cropped.append((title, lines, img[y0 * f:y0 * f + n, x0 * f:x0 * f + n]))
    tiles = cropped
    h = w = c
    line_h, pad = 12, 4
    text_h = line_h * (1 + max(len(lines) for _, lines, _ in tiles)) + pad
    cols = len(tiles)
    canvas = Image.new('RGB', (cols * (w + pad) + pad, h + text_h + 2 * pad), 'white')
    draw = ImageDraw.Draw(canvas)
    for i, (title, lines, img) in enumerate(tiles):
        pil = Image.fromarray(img)
        if pil.size != (w, h):
            pil = pil.resize((w, h), Image.NEAREST)
        x = pad + i * (w + pad)
        canvas.paste(pil, (x, pad))
        draw.text((x, h + pad + 2), title, fill='black')
        for j, text in enumerate(lines):
            draw.text((x, h + pad + 2 + line_h * (j + 1)), text, fill='black')
    out = utility.Path(path)
    buffer = __import__('io').BytesIO()
    canvas.save(buffer, format='PNG')
    utility.atomic_write_bytes(out, buffer.getvalue())
    return np.asarray(canvas).shape


def run(argv=None):
    args = _parse(sys.argv[1:] if argv is None else argv)
    import torch
    # The degradation runs in float32 on the CPU, in a single thread: thread-count
    # independence must not depend on how a kernel splits its sums.
    torch.set_num_threads(1)
    for name in args.data_test:
        for s in args.scale:
            make_test_set(args.dir_data, name, s, args.degradation, args.seed,
                          variants=args.variants)
    if args.preview:
        write_preview(args.preview, args.dir_data, args.data_test[0], args.scale[0],
                      args.degradation, args.seed, args.preview_image, args.preview_count)
        print(f'preview -> {args.preview}')
    return 0


def main(argv=None):
    return utility.run_cli(run, 'degrade.py', argv)


if __name__ == '__main__':
    sys.exit(main())
