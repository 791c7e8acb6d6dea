"""Discriminators by name: ``--discriminator vgg192`` is ``src/discriminator/vgg192.py``.

Every GAN-type loss term (GAN, RGAN, UGAN, ...) builds its network here, so any of them can
play against any discriminator.  An entry is a file defining ``make_discriminator(args) ->
nn.Module`` (the lazy registry of src/registry.py); it refuses, with one line, a training
patch its head cannot take.  Networks take [B, C, H, W] in [0, 1] and return logits, one per
image ([B, 1]) or per pixel ([B, 1, H, W]).  Entries in the official layouts (their
parameter names are the official ones, so the published files load strictly):

    vgg      ESRGAN's VGG-style network with an adaptive pool: any patch >= 32 (EDSR-PyTorch's
             GAN); at 128 it is vgg128, keys included.  GAN's and RGAN's default.
    vgg128   BasicSR VGGStyleDiscriminator(num_in_ch, 64), input 128 (ESRGAN, LDL, SPSR).
    vgg256   BasicSR VGGStyleDiscriminator(..., input_size=256) (SwinIR-GAN).
    vgg192   Discriminator_VGG_192 of the SSL repository's discriminator_arch.py (ELAN-GAN,
             BebyGAN).
    unet     BasicSR UNetDiscriminatorSN (Real-ESRGAN); UGAN's.

``--d_pre_train FILE`` starts the chosen network from a file in its layout: a plain
state_dict or BasicSR's ``{'params': ...}`` / ``{'params_ema': ...}``, loaded strictly (a
file of another layout is refused with one line naming the mismatch).
"""
import registry
import utility


def available():
    """Sorted names of the discriminators (files of this package)."""
    return registry.names('discriminator', 'make_discriminator')


def hr_patch_side(args):
    """The side of the HR training patches a discriminator sees (as option.py derives it)."""
    if len(args.scale) == 1:
        return args.patch_size // args.scale[0] * args.scale[0]
    return args.patch_size * min(args.scale)       # several scales: patch_size is the LR side


def make_discriminator(args, name, term='GAN'):
    """The discriminator ``name`` for ``args``, started from --d_pre_train when given.

    term: the loss type asking (named in messages).  Raises utility.UserError for an
    unknown name, a patch the network cannot take, or a --d_pre_train file of another layout.
    """
    module = registry.load('discriminator', name, 'make_discriminator', '--discriminator')
    net = module.make_discriminator(args)
    path = getattr(args, 'd_pre_train', '')
    if path:
        load_pretrained(net, path, name.lower(), term)
    return net


def load_pretrained(net, path, name, term='GAN'):
    """Load ``path`` (plain state_dict or BasicSR 'params' / 'params_ema') strictly into net."""
    import model as model_pkg
    source = f'--d_pre_train {path}'
    model_pkg.load_state_dict_explained(
        net, utility.load_pt(path, source), source,
        hint=(f'it is not a {name} discriminator ({type(net).__name__}) for {term}; give a '
              f'file of that layout or the --discriminator it was saved from '
              f'(available: {", ".join(available())})'))


def refuse_patch(name, args, need):
    """UserError: discriminator ``name`` cannot take this run's HR patches; ``need`` says what."""
    raise utility.UserError(f'--discriminator {name} takes {need}, but --patch_size '
                            f'{args.patch_size} gives HR patches of {hr_patch_side(args)}; '
                            f'set --patch_size accordingly or choose another --discriminator '
                            f'(available: {", ".join(available())})')
