"""Command-line options, with EDSR-PyTorch's flag names and meanings.

Nothing is parsed at import: call ``parse_args(argv)``.  Templates (``--template``)
are applied as parser defaults before the real parse, so the command line always
wins.  Derived values (scale list, dataset lists, loss terms) are computed once
here; the returned namespace is read-only afterwards.
"""
import argparse
import math
import os
import sys

import template
import utility


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit status 2; a mistyped flag gets
    the nearest real one ("did you mean")."""

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message}{self._suggestion(message)} (see --help)\n')

    def _suggestion(self, message):
        import difflib
        if not message.startswith('unrecognized arguments: '):
            return ''
        flags = [o for a in self._actions for o in a.option_strings if o.startswith('--')]
        for token in message[len('unrecognized arguments: '):].split():
            close = difflib.get_close_matches(token.split('=')[0], flags, n=1, cutoff=0.6) \
                if token.startswith('-') else []
            if close:
                return f'; did you mean {close[0]}?'
        return ''


class _HelpFormatter(argparse.HelpFormatter):
    """Appends '(default: X)' to a flag's help when it has a value worth showing."""

    def _get_help_string(self, action):
        text = action.help or ''
        default = action.default
        if default is None or default is False or default == '' \
                or default is argparse.SUPPRESS or 'default' in text:
            return text
        values = default if isinstance(default, (tuple, list)) else [default]
        shown = ' '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in values)
        return f'{text} (default: {shown})'


def _number(convert, text, ok, expected):
    """``convert(text)`` when ``ok(value)``; otherwise argparse's one-line type error."""
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f'expected {expected}, got {text!r}')
    return value


def _positive_int(text):
    return _number(int, text, lambda v: v > 0, 'a positive integer')


def _non_negative_int(text):
    return _number(int, text, lambda v: v >= 0, 'an integer >= 0')


def _odd_positive_int(text):
    return _number(int, text, lambda v: v > 0 and v % 2 == 1, 'an odd positive integer')


def _seed(text):
    # numpy's global seed must fit in 32 unsigned bits.
    return _number(int, text, lambda v: 0 <= v < 2 ** 32, 'an integer in 0..4294967295')


def _finite_float(text):
    return _number(float, text, math.isfinite, 'a finite number')


def _non_negative_float(text):
    return _number(float, text, lambda v: math.isfinite(v) and v >= 0, 'a finite number >= 0')


def _positive_float(text):
    return _number(float, text, lambda v: math.isfinite(v) and v > 0, 'a finite number > 0')


def _crop_border(text):
    """'edsr', 'scale' or a number of pixels >= 0."""
    if text in ('edsr', 'scale'):
        return text
    return _number(int, text, lambda v: v >= 0, "'edsr', 'scale' or an integer >= 0")


def _unit_float(text):
    """A number in [0, 1): Adam's betas, the EMA decay."""
    return _number(float, text, lambda v: 0 <= v < 1, 'a number in [0, 1)')


def build_parser():
    p = _Parser(prog='main.py', formatter_class=_HelpFormatter,
                description='Super-resolution training and evaluation (EDSR-PyTorch '
                            'conventions). Lists of names or scales are joined by "+".')

    add = p.add_argument_group('run', 'presets, devices, randomness').add_argument
    add('--template', type=str, default='',
        help=f'named preset(s) joined by "+": {", ".join(template.TEMPLATES)} (see '
             f'src/template.py); flags given on the command line override them')
    add('--n_threads', type=_non_negative_int, default=4,
        help='data-loading worker processes (0 = load in the main process)')
    add('--cpu', action='store_true', help='use the CPU even when CUDA is available')
    add('--seed', type=_seed, default=1, help='random seed')
    add('--precision', type=str, default='single', choices=('single', 'amp'),
        help='single: float32; amp: autocast (bfloat16 on CPU, float16 on GPU)')

    add = p.add_argument_group('data', 'datasets, scales, patches (docs/data.md)').add_argument
    add('--dir_data', type=str, default=str(utility.DEFAULT_DATA_DIR),
        help='dataset root (holds DIV2K/ and benchmark/<Name>/HR); default: the bundled '
             'dataset/ folder with Set5')
    add('--dir_demo', type=str, default=str(utility.REPO_ROOT / 'test'),
        help='folder of images for --data_test Demo')
    add('--data_train', type=str, default='DIV2K', help='training set(s), joined by "+"')
    add('--data_test', type=str, default='Set5',
        help='test set(s) joined by "+": any folder <dir_data>/benchmark/<Name>/HR, '
             'DIV2K, or Demo')
    add('--data_range', type=str, default='1-800/801-810',
        help='DIV2K image ranges train/test, e.g. 1-800/801-900')
    add('--ext', type=str, default='sep', choices=('img', 'sep', 'sep+reset'),
        help='img: decode images each time; sep: cache decoded images as .npy; '
             'sep+reset: rebuild that cache')
    add('--scale', type=str, default='4', help='super-resolution scale(s), e.g. 2+3+4')
    add('--patch_size', type=_positive_int, default=192, help='HR training patch size')
    add('--rgb_range', type=_positive_int, default=255, help='maximum pixel value')
    add('--n_colors', type=int, default=3, choices=(1, 3), help='number of colour channels')
    add('--no_augment', action='store_true', help='no random flips and rotations')

    add = p.add_argument_group(
        'degradation', 'how LR images are made from HR (docs/degradations.md)').add_argument
    add('--degradation', type=str, default='bicubic',
        help='how LR images are made: a file name in src/degradation/ (bicubic, realesrgan, '
             'realesrgan_ssl, bsrgan; mix for test sets); other than bicubic, training '
             'synthesises LR from HR patches on the fly and test sets read LR_<name>/ folders '
             'made by src/degrade.py')
    add('--test_degradation', type=str, default='',
        help='the degradation whose LR_<name>/ folders the test sets read (default: '
             '--degradation), e.g. mix: train on bsrgan, test on the mixed sets')
    add('--degradation_pool', type=_non_negative_int, default=0,
        help='Real-ESRGAN training-pair pool size per process (0 = off; the recipes use 180; '
             'a multiple of the per-process batch)')
    add('--degradation_usm_gt', action='store_true',
        help='train against the USM-sharpened HR (Real-ESRGAN x4plus l1/perceptual_gt_usm)')

    add = p.add_argument_group('model', 'network and weights (docs/models.md)').add_argument
    add('--model', type=str, default='EDSR',
        help='model file name in src/model/ (any case), e.g. EDSR, RCAN, RRDBNet')
    add('--act', type=str, default='relu', choices=('relu',),
        help='accepted for EDSR-PyTorch command lines; every model uses its paper\'s '
             'activation')
    add('--pre_train', type=str, default='',
        help='weights to load: a path, or "download" for the published EDSR weights')
    add('--n_resblocks', type=_positive_int, default=16,
        help='number of residual blocks (RCAN: per group; VDSR: conv layers)')
    add('--n_feats', type=_positive_int, default=64, help='number of feature maps')
    add('--res_scale', type=_finite_float, default=1.0, help='residual scaling')

    add = p.add_argument_group('model: RCAN, RDN').add_argument
    add('--n_resgroups', type=_positive_int, default=10, help='RCAN: residual groups')
    add('--reduction', type=_positive_int, default=16, help='RCAN: channel-attention reduction')
    add('--G0', type=_positive_int, default=64, help='RDN: number of feature maps')
    add('--RDNkSize', type=_odd_positive_int, default=3, help='RDN: kernel size (odd)')
    add('--RDNconfig', type=str, default='B', choices=('A', 'B'),
        help='RDN: (blocks, layers, growth) A = (20, 6, 32), B = (16, 8, 64)')

    add = p.add_argument_group('model: RRDBNet (ESRGAN)').add_argument
    add('--n_rrdb', type=_positive_int, default=23, help='RRDBNet: number of RRDB blocks')
    add('--rrdb_growth', type=_positive_int, default=32, help='RRDBNet: dense growth channels')

    add = p.add_argument_group('model: SwinIR, ELAN').add_argument
    add('--img_size', type=_positive_int, default=64,
        help='SwinIR: training LR patch size the shift masks are stored for (a multiple of '
             '--window_size; other input sizes work too); --pre_train takes it from the file')
    add('--window_size', type=_positive_int, default=8, help='SwinIR: attention window side')
    add('--embed_dim', type=_positive_int, default=180, help='SwinIR: transformer features')
    add('--depths', type=_positive_int, nargs='+', default=(6,) * 6, metavar='D',
        help='SwinIR: Swin blocks per residual group, one number per group')
    add('--num_heads', type=_positive_int, nargs='+', default=(6,) * 6, metavar='H',
        help='SwinIR: attention heads per residual group (divide --embed_dim)')
    add('--mlp_ratio', type=_positive_float, default=2.0,
        help='SwinIR: MLP hidden features / --embed_dim')
    add('--upsampler', type=str, default='pixelshuffle',
        choices=('pixelshuffle', 'pixelshuffledirect', 'nearest+conv'),
        help='SwinIR reconstruction: pixelshuffle (classical), pixelshuffledirect '
             '(lightweight), nearest+conv (real-world, x4)')
    add('--resi_connection', type=str, default='1conv', choices=('1conv', '3conv'),
        help='SwinIR: conv closing each residual group (3conv: SwinIR-L)')
    add('--m_elan', type=_positive_int, default=36, help='ELAN: attention blocks (ELAB)')
    add('--c_elan', type=_positive_int, default=180, help='ELAN: features (a multiple of 3)')
    add('--elan_windows', type=_positive_int, nargs=3, default=(4, 8, 16), metavar='W',
        help='ELAN: window sides of the three attention groups')
    add('--r_expand', type=_positive_int, default=2, help='ELAN: local-feature expansion')
    add('--n_share', type=_non_negative_int, default=0,
        help='ELAN: blocks reusing the attention maps after each computing one')
    add('--elan_img_range', type=_positive_float, default=255.0,
        help='ELAN: the network scales mean-subtracted [0, 1] images by this (official 255)')
    add('--drop_path', type=_unit_float, default=0.1,
        help='SwinIR: stochastic-depth rate of the last block (training only)')

    add = p.add_argument_group('model: DiffSR (diffusion)', 'docs/diffusion.md').add_argument
    add('--unet_channels', type=_positive_int, nargs='+', default=(64, 128, 256), metavar='C',
        help='DiffSR: UNet features per level (each further level halves the size)')
    add('--unet_layers', type=_positive_int, default=2, help='DiffSR: ResNet blocks per UNet level')
    add('--unet_attention', action='store_true',
        help='DiffSR: self-attention in the lowest UNet level')
    add('--diffusion_steps', type=_positive_int, default=20,
        help='DiffSR: sampling steps in evaluation (of the 1000 training steps)')
    add('--diffusion_sampler', type=str, default='ddim', choices=('ddim', 'dpm'),
        help='DiffSR: sampler in evaluation: DDIM (eta 0, x0 clipped to the image range) or '
             'DPM-Solver++ (2nd order)')
    add('--sample_seed', type=_seed, default=0,
        help='DiffSR: seed of the starting noise in evaluation (mixed with each input image)')

    add = p.add_argument_group('training', 'epochs and batches (docs/training.md)').add_argument
    add('--test_every', type=_positive_int, default=1000, help='batches per epoch')
    add('--epochs', type=_positive_int, default=300, help='number of epochs')
    add('--batch_size', type=_positive_int, default=16,
        help='global batch size (split across ranks under torchrun)')

    add = p.add_argument_group(
        'evaluation', 'test-only runs and the validation after each epoch (docs/metrics.md)'
    ).add_argument
    add('--self_ensemble', action='store_true', help='x8 self-ensemble at test time')
    add('--test_only', action='store_true', help='evaluate only')
    add('--best_on', type=str, default='',
        help='test set, scale and optionally metric that choose the best model, e.g. Set5:2 '
             'or Set5:4:lpips (default: the first of --data_test, --scale and --metrics)')
    add('--metrics', type=str, default='psnr+ssim',
        help='evaluation metrics joined by "+", any of the files in src/metric/: psnr, ssim, '
             'lpips, lpips_vgg, dists, fid (per set), niqe, musiq, clipiqa (any case)')
    add('--metric_weights', type=str, default='',
        help='folder searched first for the metrics\' weight files, under their published '
             'names (backbones, alex.pth, vgg.pth, weights.pt, niqe_pris_params.npz, '
             'pt_inception-2015-12-05-6726825d.pth, musiq_koniq_ckpt-e95806b9.pth, RN50.pt); '
             'default: torch hub\'s checkpoints folder and the installed packages')
    add('--chop', action='store_true', help='tiled forward pass to save memory')
    add('--chop_size', type=_positive_int, default=160000,
        help='with --chop: largest LR tile area in pixels before splitting again')


    add = p.add_argument_group('evaluation protocol (see docs/metrics.md)').add_argument
    add('--protocol', type=str, default='edsr', choices=tuple(template.PROTOCOLS),
        help='a set of the switches below: edsr (the defaults: EDSR-PyTorch\'s conventions) or '
             'ssl_paper (BasicSR\'s, as the SSL paper: float Y, border = scale on every set, '
             'HR mod-crop 12, DIV2K 801-900 measured as a benchmark); switches given on the '
             'command line override it')
    add('--y_channel', type=str, default='rounded', choices=('rounded', 'float'),
        help='PSNR/SSIM luminance on benchmark sets: rounded to integers as MATLAB\'s '
             'rgb2ycbcr on 8-bit images (EDSR) or the unrounded value (BasicSR)')
    add('--crop_border', type=_crop_border, default='edsr',
        help='pixels shaved from each side for every metric: edsr (scale on benchmark sets, '
             'scale + 6 on DIV2K), scale (scale on every set), or a number')
    add('--hr_modcrop', type=_non_negative_int, default=0,
        help='crop each test HR image to a multiple of this before making its LR (a multiple '
             'of every --scale, e.g. 12); 0: a multiple of the scale')
    add('--div2k_benchmark', action='store_true',
        help='measure DIV2K test images as benchmark sets (Y channel, benchmark border)')

    add = p.add_argument_group(
        'optimisation', 'optimizer, lr schedule, weight average').add_argument
    add('--lr', type=_non_negative_float, default=1e-4, help='learning rate')
    add('--decay', type=str, default='200', help='epochs at which the lr decays, e.g. 200-400')
    add('--gamma', type=_positive_float, default=0.5, help='lr decay factor')
    add('--optimizer', type=str, default='ADAM', choices=('ADAM', 'SGD', 'RMSprop'),
        help='optimizer of the network')
    add('--momentum', type=_non_negative_float, default=0.9, help='SGD momentum')
    add('--betas', type=_unit_float, nargs=2, default=(0.9, 0.999), metavar=('B1', 'B2'),
        help='Adam betas')
    add('--epsilon', type=_non_negative_float, default=1e-8, help='Adam/RMSprop epsilon')
    add('--weight_decay', type=_non_negative_float, default=0.0, help='weight decay')
    add('--gclip', type=_non_negative_float, default=0.0,
        help='gradient clipping by norm (0 = off)')
    add('--ema_decay', type=_unit_float, default=0.0,
        help='exponential moving average of the weights, used for evaluation (0 = off)')

    add = p.add_argument_group(
        'loss', 'the loss string and what applies to every term (docs/training.md)').add_argument
    add('--loss', type=str, default='1*L1',
        help='loss terms weight*TYPE joined by "+", TYPE a file name in src/loss/, e.g. '
             '1*L1+0.1*SSL+1*SPL')
    add('--loss_range', type=_non_negative_float, default=0.0,
        help='the loss terms see images in [0, loss_range]: 0 = --rgb_range (EDSR-PyTorch: '
             'L1 in pixel units); the BasicSR/KAIR recipes use 1, so their weights mean what '
             'they mean there at any --rgb_range')
    add('--skip_threshold', type=_positive_float, default=1e8,
        help='skip a batch whose loss exceeds this many times the last epoch mean')

    add = p.add_argument_group('loss: SSL', 'self-similarity loss (docs/ssl.md)').add_argument
    add('--ssl_search', type=_odd_positive_int, default=25, help='SSL search window (odd)')
    add('--ssl_window', type=_odd_positive_int, default=9, help='SSL patch window (odd)')
    add('--ssl_sigma', type=_finite_float, default=0.004, help='SSL similarity bandwidth')
    add('--ssl_threshold', type=_finite_float, default=20.0,
        help='SSL edge-mask Laplacian threshold (0..255 scale)')
    add('--ssl_stride', type=_positive_int, default=1,
        help='SSL keeps masked pixels with (row - col) mod stride == 0')
    add('--ssl_kl', type=_finite_float, default=1.0, help='SSL weight of the KL part')
    add('--ssl_no_norm', action='store_true', help='SSL: do not row-normalise the graphs')

    add = p.add_argument_group('loss: SPL', 'pixel-level self-paced learning').add_argument
    add('--spl_alpha', '--splalpha', dest='spl_alpha', type=_finite_float, default=1.0,
        help='SPL: sigma = alpha * age + beta')
    add('--spl_beta', '--splbeta', dest='spl_beta', type=_finite_float, default=0.0,
        help='SPL: sigma = alpha * age + beta')
    add('--spl_max', '--splval', dest='spl_max', type=_finite_float, default=2.0,
        help='SPL: largest pixel weight')

    add = p.add_argument_group(
        'loss: adversarial and perceptual',
        'GAN, RGAN, UGAN, VGG22, VGG54, PERCEPTUAL (docs/recipes.md)').add_argument
    add('--gan_k', type=_positive_int, default=1,
        help='GAN: discriminator updates per generator step')
    add('--discriminator', type=str, default='',
        help='GAN-type terms: the discriminator, a file name in src/discriminator/ (e.g. '
             'vgg128); empty = the term\'s own (GAN/RGAN: vgg, UGAN: unet)')
    add('--d_pre_train', type=str, default='',
        help='GAN-type terms: start the discriminator from a file in its official layout '
             '(plain state_dict or BasicSR {"params": ...}), loaded strictly, e.g. '
             'RealESRGAN_x4plus_netD.pth')
    add('--vgg_criterion', type=str, default='mse', choices=('mse', 'l1'),
        help='distance between VGG features: mse (EDSR-PyTorch) or l1 (ESRGAN/SSL recipe)')
    add('--vgg_weights', type=str, default='',
        help='VGG19 weights (torchvision vgg19 state_dict layout) for VGG22/VGG54/PERCEPTUAL; '
             'default: vgg19-dcbb9e9d.pth in torch hub\'s checkpoints folder '
             '($TORCH_HOME/hub/checkpoints)')

    add = p.add_argument_group(
        'loss: SPSR, BebyGAN, RankSRGAN',
        'GRAD_MSE, BRANCH_L1, GRAD_RGAN, BBL, BP, REGION_RGAN, RANK (docs/recipes.md)').add_argument
    add('--perceptual_layers', type=str, default='',
        help='PERCEPTUAL: VGG19 layers and weights, e.g. conv3_4:0.125+conv4_4:0.25+conv5_4:0.5 '
             '(BebyGAN); default conv1_2:0.1+conv2_2:0.1+conv3_4:1+conv4_4:1+conv5_4:1')
    add('--d_grad_pre_train', type=str, default='',
        help='GRAD_RGAN: start its gradient-map discriminator (VGG-128) from BasicSR-layout '
             'weights, e.g. SPSR\'s net_d_grad file')
    add('--ranker_pre_train', type=str, default='',
        help='RANK: the ranker\'s weights (a Ranker_VGG12_296 state_dict, e.g. '
             'mmsr_Ranker_PI.pth)')
    add('--rank_released', action='store_true',
        help='RANK: as the released SSL code, score under no_grad with the ranker in training '
             'mode (the term then never trains the generator); default: the paper\'s term, '
             'gradient through the frozen ranker')

    add = p.add_argument_group('output', 'the run folder experiment/<save>/').add_argument
    add('--save', type=str, default='test', help='run name: outputs go to experiment/<save>')
    add('--load', type=str, default='', help='resume experiment/<load> from its checkpoint')
    add('--reset', action='store_true',
        help='archive the previous run of the same --save name and start afresh')
    add('--print_every', type=_positive_int, default=100, help='batches between log lines')
    add('--save_models', action='store_true', help='also keep model_<epoch>.pt every epoch')
    add('--save_results', action='store_true', help='write the SR images as PNG')
    add('--save_gt', action='store_true', help='with --save_results: also write LR and HR')

    add = p.add_argument_group(
        'pictures', 'figures and TensorBoard (docs/pictures.md)').add_argument
    add('--save_maps', action='store_true',
        help='after each evaluation: maps/spl_<epoch>.png, the SPL weight map of the first '
             'test image and the weight-vs-SSIM curve at the current age (needs SPL in --loss)')
    add('--tensorboard', action='store_true',
        help='log scalars and an LR/SR/HR grid to experiment/<save>/tb/ (needs '
             '`pip install tensorboard`)')
    return p


def _split(text, what, parser):
    items = [t.strip() for t in text.split('+')]
    if not all(items):
        parser.error(f'{what} {text!r} has an empty entry; join names with "+"')
    return items


def _derive(args, parser):
    try:
        args.scale = [int(s) for s in _split(args.scale, '--scale', parser)]
    except ValueError:
        parser.error(f'--scale {args.scale!r} must be integers joined by "+", e.g. 2+3+4')
    if any(s < 1 for s in args.scale):
        parser.error('--scale values must be >= 1')
    args.data_train = _split(args.data_train, '--data_train', parser)
    # Lists from the command line, tuples from a default: one type for the read-only args.
    args.betas = tuple(args.betas)
    args.depths, args.num_heads = tuple(args.depths), tuple(args.num_heads)
    args.elan_windows = tuple(args.elan_windows)
    args.unet_channels = tuple(args.unet_channels)
    args.data_test = _split(args.data_test, '--data_test', parser)
    try:
        args.decay = [int(d) for d in args.decay.split('-')]
    except ValueError:
        parser.error(f'--decay {args.decay!r} must be epochs joined by "-", e.g. 200-400')
    if not args.save.strip():
        parser.error('--save must not be empty')
    for name in ('save', 'load'):
        value = getattr(args, name)
        if value and (value in ('.', '..') or '/' in value or '\\' in value):
            parser.error(f'--{name} {value!r} must be a plain run name (no path), e.g. edsr_x2')
    import metric as metric_pkg
    try:
        args.metrics = metric_pkg.parse_names(args.metrics)
        for name in args.metrics:
            if args.n_colors != 3 and getattr(metric_pkg.get_module(name), 'RGB_ONLY', False):
                raise utility.UserError(f'--metrics {name} works on RGB images, but --n_colors is '
                                        f'{args.n_colors}; use --n_colors 3 or drop {name}')
    except utility.UserError as e:
        parser.error(str(e))
    if args.metric_weights and not os.path.isdir(os.path.expanduser(args.metric_weights)):
        parser.error(f'--metric_weights {args.metric_weights!r} is not a folder; give the folder '
                     f'that holds the metric weight files, or drop the flag')
    args.best_key = (args.data_test[0], args.scale[0], args.metrics[0])
    if args.best_on:
        name, _, rest = args.best_on.partition(':')
        s, _, which = rest.partition(':')
        which = which.lower() or args.metrics[0]
        if not s.isdigit() or name not in args.data_test or int(s) not in args.scale \
                or which not in args.metrics:
            parser.error(f'--best_on {args.best_on!r} must be NAME:SCALE[:METRIC] with NAME in '
                         f'--data_test, SCALE in --scale and METRIC in --metrics, e.g. '
                         f'{args.data_test[0]}:{args.scale[0]}:{args.metrics[-1]}')
        args.best_key = (name, int(s), which)
    _check_protocol(args, parser)
    import degradation
    args.degradation = args.degradation.lower()
    if args.degradation not in degradation.names():
        parser.error(f'unknown --degradation {args.degradation!r}; available (files in '
                     f'src/degradation/): {", ".join(degradation.names())}')
    if args.degradation != degradation.DEFAULT and len(args.scale) > 1:
        parser.error(f'--degradation {args.degradation} works at one scale; give one --scale')
    args.test_degradation = args.test_degradation.lower()
    if args.test_degradation and args.test_degradation not in degradation.names():
        parser.error(f'unknown --test_degradation {args.test_degradation!r}; available (files '
                     f'in src/degradation/): {", ".join(degradation.names())}')
    if args.test_degradation not in ('', degradation.DEFAULT) and len(args.scale) > 1:
        parser.error(f'--test_degradation {args.test_degradation} works at one scale; give one '
                     f'--scale')
    # Parse the loss string here so that a bad one is refused before anything is built.
    import loss as loss_pkg
    try:
        args.loss_terms = loss_pkg.parse_loss_string(args.loss)
    except utility.UserError as e:
        parser.error(str(e))
    _check_ssl_fits_patch(args, parser)
    if args.save_maps and 'SPL' not in [name for _, name in args.loss_terms]:
        parser.error(f'--save_maps draws the weights of the SPL term, and --loss {args.loss!r} '
                     f'has none; add one (e.g. --loss 1*L1+1*SPL) or drop --save_maps')
    _refuse_unread_flags(args, parser)
    return args


def _given_flags(argv):
    """The dests of the flags written in ``argv`` (abbreviations and --flag=value included),
    whatever their values; template defaults are not counted."""
    probe = build_parser()
    for action in probe._actions:
        action.default = argparse.SUPPRESS
        action.required = False
    probe.error = lambda message: None       # errors are the real parse's to report
    try:
        found, _ = probe.parse_known_args(argv)
    except (SystemExit, TypeError):
        return set()
    return set(vars(found))


def _refuse_unread_flags(args, parser):
    """Refuse a flag that only some models or loss types read (their file's ``FLAGS``)
    when the chosen --model and --loss read none of it (HOUSE rule 15)."""
    import registry
    given = getattr(args, '_given', set())
    chosen_terms = [name.lower() for _, name in args.loss_terms]
    for package, factory, chosen, what in (
            ('loss', 'make_loss', chosen_terms, f'--loss {args.loss!r}'),
            ('model', 'make_model', [args.model.lower()], f'--model {args.model}')):
        for dest, owners in sorted(registry.flag_owners(package, factory).items()):
            if dest in given and not any(o in chosen for o in owners):
                kind = 'loss type' if package == 'loss' else 'model'
                names = ', '.join(o.upper() if package == 'loss' else o for o in owners)
                parser.error(f'--{dest} does nothing for {what} (only the {kind}'
                             f'{"s" if len(owners) > 1 else ""} {names} read'
                             f'{"" if len(owners) > 1 else "s"} it); drop the flag or use '
                             f'{"one of them" if len(owners) > 1 else "it"}')


def _attach_dash_values(parser, argv):
    """``['--loss', '-1*L1']`` -> ``['--loss=-1*L1']``.

    argparse takes a value that starts with '-' (and is not a plain negative number) for
    a flag, so ``--loss -1*L1`` would fail with "expected one argument" instead of the
    flag's own check.  A value that is itself a known flag is left alone.
    """
    flags = {o: a for a in parser._actions for o in a.option_strings}
    out, i = [], 0
    while i < len(argv):
        token = argv[i]
        action = flags.get(token)
        if (action is not None and action.nargs is None and i + 1 < len(argv)
                and argv[i + 1].startswith('-') and argv[i + 1] not in flags
                and argv[i + 1] != '--'):
            out.append(f'{token}={argv[i + 1]}')
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def _check_protocol(args, parser):
    bad = [s for s in args.scale if args.hr_modcrop % s]
    if args.hr_modcrop and bad:
        parser.error(f'--hr_modcrop {args.hr_modcrop} is not a multiple of --scale {bad[0]}; '
                     f'use a common multiple of the scales, e.g. 12 for 2+3+4')
    explicit = 'div2k_benchmark' in getattr(args, '_given', ())
    if args.div2k_benchmark and explicit and not any(n.lower() == 'div2k'
                                                     for n in args.data_test):
        parser.error('--div2k_benchmark changes how DIV2K test images are measured, and '
                     '--data_test has no DIV2K; add DIV2K to --data_test or drop the flag')


def _check_ssl_fits_patch(args, parser):
    """SSL needs search // 2 + 1 pixels per side of the smallest HR training patch."""
    if args.test_only or not any(t == 'SSL' for _, t in args.loss_terms):
        return
    if len(args.scale) == 1:
        side = args.patch_size // args.scale[0] * args.scale[0]
    else:                                   # several scales: patch_size is the LR side
        side = args.patch_size * min(args.scale)
    need = args.ssl_search // 2 + 1
    if side < need:
        largest = 2 * side - 1
        parser.error(f'--ssl_search {args.ssl_search} needs HR training patches of at least '
                     f'{need} pixels per side, but --patch_size {args.patch_size} gives {side}; '
                     f'use --ssl_search {largest} or less (and --ssl_window <= it), or a larger '
                     f'--patch_size')


# Values of a run named with --load that are not its defaults: they say what to do now.
_NOT_INHERITED = ('load', 'save', 'reset', 'test_only')


class _SavedLineParser(_Parser):
    """Parses a run's recorded command line; its errors are about that run, not this one."""

    def error(self, message):
        raise utility.UserError(message)


def _raw_values(argv, parser=None):
    """{dest: value} of ``argv`` as the parser gives them (templates applied, nothing derived)."""
    parser = parser or build_parser()
    argv = _attach_dash_values(parser, list(argv))
    pre, _ = parser.parse_known_args(argv)
    parser.set_defaults(**template.defaults(pre.template, parser))
    return vars(parser.parse_args(argv))


def _runs_with_checkpoints():
    root = utility.EXPERIMENT_ROOT
    return sorted(p.name for p in root.iterdir() if (p / 'checkpoint.pt').is_file()) \
        if root.is_dir() else []


def check_load(load):
    """UserError naming the runs that have a checkpoint when run ``load`` has none.  main.py
    calls it before looking for data (a missing dataset would hide the typo); parsing alone
    does not, so that commands can be checked before the run they load exists."""
    import difflib
    path = utility.EXPERIMENT_ROOT / load / 'checkpoint.pt'
    if not path.is_file():
        runs = _runs_with_checkpoints()
        close = difflib.get_close_matches(load, runs, n=1)
        hint = (f'did you mean --load {close[0]}? ' if close else '') + (
            f'runs with a checkpoint: {", ".join(runs[:8])}{" ..." if len(runs) > 8 else ""}'
            if runs else f'no run in {utility.EXPERIMENT_ROOT} has one')
        raise utility.UserError(f'--load {load}: {path} does not exist, so there is nothing to '
                                f'resume or evaluate; {hint} (start a new run with --save)')


def saved_run_values(load):
    """The arguments run ``load`` was started (or last resumed) with, as {dest: raw value}:
    the defaults of a command that names it with --load; {} when the run has no checkpoint
    (see ``check_load``).  UserError (one line) when the checkpoint cannot be read."""
    path = utility.EXPERIMENT_ROOT / load / 'checkpoint.pt'
    if not path.is_file():
        return {}
    ckpt = utility.load_pt(path, mmap=True)
    saved = ckpt.get('args') if isinstance(ckpt, dict) else None
    if not isinstance(saved, dict):
        raise utility.UserError(f'{path} holds no saved arguments; it is not a checkpoint '
                                f'written by this code')
    raw = saved.get('raw_args')
    if not isinstance(raw, dict):
        # Written before raw_args was kept: the run's own command line says the same.
        try:
            raw = _raw_values(saved.get('argv') or [], _SavedLineParser(prog='main.py'))
        except utility.UserError as e:
            raise utility.UserError(f'the command line saved in {path} no longer parses ({e}); '
                                    f'give the run\'s flags again with --load {load}') from None
    return {k: v for k, v in raw.items() if k not in _NOT_INHERITED}


def _run_weights(load):
    """The weights a test-only run of run ``load`` evaluates: model_best.pt, else
    model_latest.pt; UserError when it has neither."""
    folder = utility.EXPERIMENT_ROOT / load / 'model'
    for name in ('model_best.pt', 'model_latest.pt'):
        if (folder / name).is_file():
            return str(folder / name)
    raise utility.UserError(f'--test_only --load {load}: {folder} holds no model_best.pt or '
                            f'model_latest.pt; give the weights with --pre_train PATH')


def parse_args(argv=None):
    """Parse ``argv`` (default ``sys.argv[1:]``) into a read-only namespace.

    With ``--load RUN`` the arguments RUN was trained with are the defaults (flags given
    now override them; ``overrides`` lists those that changed a value, as (dest, saved,
    given)); with ``--test_only`` too, RUN's model is evaluated (``--pre_train`` defaults to
    its model_best.pt) into ``--save`` (default ``<RUN>_test``).
    """
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    argv = _attach_dash_values(parser, argv)
    pre, _ = parser.parse_known_args(argv)
    inherited = saved_run_values(pre.load) if pre.load and not pre.reset else {}
    defaults = template.defaults(pre.template, parser)
    parser.set_defaults(**defaults)
    # The protocol's switches are defaults too (the command line wins).
    pre, _ = parser.parse_known_args(argv)
    parser.set_defaults(**template.PROTOCOLS[pre.protocol])
    parser.set_defaults(**inherited)
    args = parser.parse_args(argv)
    given = _given_flags(argv)
    if args.load and args.test_only and not args.reset and inherited:   # --reset: refused later
        if 'pre_train' not in given:
            args.pre_train = _run_weights(args.load)
        if 'save' not in given:
            args.save = f'{args.load}_test'
    raw = dict(vars(args))
    args._given = given
    args = _derive(args, parser)
    del args._given
    args.argv = list(argv)
    # The effective values before derivation: the defaults of a later --load of this run.
    args.raw_args = raw
    args.overrides = [(k, inherited[k], raw[k]) for k in sorted(given)
                      if k in inherited and inherited[k] != raw[k]]
    return utility.FrozenNamespace(**vars(args))
