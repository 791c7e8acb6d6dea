"""Adversarial loss terms GAN, RGAN and UGAN (helper, not a loss type).

The term owns its discriminator (any network of src/discriminator/, chosen by
--discriminator) and the discriminator's Adam optimizer.  In training mode
each ``forward(sr, hr)`` first updates the discriminator ``gan_k`` times on ``sr.detach()``
and ``hr``, then returns the generator's adversarial loss computed with the updated
discriminator (EDSR-PyTorch's order).  In eval mode the discriminator is left unchanged.

State: the discriminator is a child module (weights and BatchNorm statistics in the term's
state_dict) and the optimizer state travels through ``get_extra_state``/``set_extra_state``,
so a checkpoint of the composite loss restores the adversarial game exactly.

Precision: the whole term runs in float32 with autocast disabled.  The discriminator has no
GradScaler of its own, and float16 gradients of a BCE loss underflow easily.

DDP: the trainer wraps only the generator.  Each rank keeps its own discriminator, but when
torch.distributed is initialised its parameters are broadcast from rank 0 at the first
update and its gradients are averaged over ranks before every step, so all ranks hold the
same discriminator (as with the generator) and rank 0's checkpoint is everyone's state.
BatchNorm running statistics stay per rank; they matter only in eval mode.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

import discriminator as discriminator_pkg
from discriminator._vgg_style import VGGStyleDiscriminator

def _mse(scores, target):
    """Mean squared distance of the scores to a constant label (LSGAN: 1.0 real, 0.0 fake)."""
    return F.mse_loss(scores, torch.full_like(scores, target))


def _bce(logits, target):
    """Mean binary cross-entropy of logits against a constant label (1.0 real, 0.0 fake)."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class Adversarial(nn.Module):
    """Adversarial loss term with its own discriminator and Adam optimizer.

    relativistic False (GAN, as EDSR-PyTorch): D loss BCE(D(hr), 1) + BCE(D(sr), 0);
    generator loss BCE(D(sr), 1).
    relativistic True (RGAN, relativistic average, as ESRGAN), with C the logits:
    D loss = [BCE(C(hr) - mean C(sr), 1) + BCE(C(sr) - mean C(hr), 0)] / 2;
    generator loss = [BCE(C(hr) - mean C(sr), 0) + BCE(C(sr) - mean C(hr), 1)] / 2, C(hr)
    without gradient.  Means are over the batch.  As in ESRGAN, the D loss back-propagates
    through both means (the SSL authors' BasicSR copy detaches them in the D step).

    least_squares True (LSGAN, Mao et al. 2017, as KAIR's ``GANLoss('lsgan')``): D loss
    MSE(D(hr), 1) + MSE(D(sr), 0); generator loss MSE(D(sr), 1); means over every output.

    forward(sr, hr): [B, C, H, W] in [0, rgb_range], sizes the discriminator takes -> scalar
    generator loss (BCE means over every logit: per image or per pixel).
    ``view`` (optional): what the discriminator sees instead of the images, a callable
    ``(fake, real) -> (fake', real')`` on the [0, 1] images, used in its updates and in the
    generator loss alike (keeping fake's graph): SPSR's gradient maps (GRAD_RGAN),
    BebyGAN's images without their flat regions (REGION_RGAN).  An nn.Module view is a child
    (its buffers travel with the term).
    ``last_d_loss``: mean discriminator loss of the last update (0-dim tensor) or None.
    """

    OWN_OPTIMIZER = True   # Loss.set_lr passes the generator's lr on

    def __init__(self, relativistic=False, n_colors=3, rgb_range=255, gan_k=1, lr=1e-4,
                 betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, sync_ddp=True,
                 discriminator=None, view=None,
                 least_squares=False):
        super().__init__()
        if relativistic and least_squares:
            raise ValueError('relativistic and least_squares exclude each other')
        self.relativistic = relativistic
        self.view = view
        self.least_squares = least_squares
        self.rgb_range = rgb_range
        self.gan_k = gan_k
        self.sync_ddp = sync_ddp
        # default: ESRGAN's VGG-style network for any patch >= 32 (the registry's 'vgg')
        self.discriminator = (VGGStyleDiscriminator(n_colors)
                              if discriminator is None else discriminator)
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr,
                                          betas=tuple(betas), eps=eps,
                                          weight_decay=weight_decay)
        self.last_d_loss = None
        self._ranks_synced = False

    # -- state -----------------------------------------------------------------------
    def get_extra_state(self):
        return self.optimizer.state_dict()

    def set_extra_state(self, state):
        self.optimizer.load_state_dict(state)

    def _apply(self, fn, *args, **kwargs):
        # .to(device) moves the discriminator; move the Adam moments with it, whether the
        # state was loaded before or after the move.
        super()._apply(fn, *args, **kwargs)
        if self.optimizer.state:
            self.optimizer.load_state_dict(self.optimizer.state_dict())
        return self

    def set_lr(self, lr):
        """Set the discriminator's learning rate (e.g. to follow the generator's decay)."""
        for group in self.optimizer.param_groups:
            group['lr'] = lr

    # -- loss ------------------------------------------------------------------------
    def forward(self, sr, hr):
        # float32 throughout, see the module docstring; .float() keeps sr's graph.
        with torch.autocast(sr.device.type, enabled=False):
            fake = sr.float() / self.rgb_range
            real = hr.detach().float() / self.rgb_range
            if self.view is not None:
                fake, real = self.view(fake, real)
                real = real.detach()
            if self.training:
                self._update_discriminator(fake.detach(), real)
            return self._generator_loss(fake, real)

    def _discriminator_loss(self, d_real, d_fake):
        if self.least_squares:
            return _mse(d_real, 1.0) + _mse(d_fake, 0.0)
        if self.relativistic:
            return (_bce(d_real - d_fake.mean(), 1.0) + _bce(d_fake - d_real.mean(), 0.0)) / 2
        return _bce(d_real, 1.0) + _bce(d_fake, 0.0)

    def _update_discriminator(self, fake, real):
        total = 0.0
        with torch.enable_grad():
            for _ in range(self.gan_k):
                self._sync_ranks()
                self.optimizer.zero_grad(set_to_none=True)
                loss_d = self._discriminator_loss(self.discriminator(real),
                                                  self.discriminator(fake))
                loss_d.backward()
                self._average_gradients()
                self.optimizer.step()
                total = total + loss_d.detach()
        self.last_d_loss = total / self.gan_k

    def _generator_loss(self, fake, real):
        params = list(self.discriminator.parameters())
        flags = [p.requires_grad for p in params]
        # The generator's backward needs gradients w.r.t. sr only, not the discriminator.
        for p in params:
            p.requires_grad_(False)
        try:
            d_fake = self.discriminator(fake)
            if self.least_squares:
                return _mse(d_fake, 1.0)
            if not self.relativistic:
                return _bce(d_fake, 1.0)
            with torch.no_grad():
                d_real = self.discriminator(real)
            return (_bce(d_real - d_fake.mean(), 0.0) + _bce(d_fake - d_real.mean(), 1.0)) / 2
        finally:
            for p, flag in zip(params, flags):
                p.requires_grad_(flag)

    # -- multi-process -----------------------------------------------------------------
    def _world(self):
        if not self.sync_ddp:
            return None
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return dist
        return None

    def _sync_ranks(self):
        """Start every rank from rank 0's discriminator (once per process)."""
        dist = self._world()
        if dist is None or self._ranks_synced:
            return
        with torch.no_grad():
            for t in list(self.discriminator.parameters()) + list(self.discriminator.buffers()):
                dist.broadcast(t, src=0)
        self._ranks_synced = True

    def _average_gradients(self):
        dist = self._world()
        if dist is None:
            return
        grads = [p.grad for p in self.discriminator.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])  # one collective per update
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()


def make_adversarial(args, relativistic, default='vgg', name=None, view=None, choice=None,
                     least_squares=False):
    """The GAN-type term for ``args``: vanilla (BCE), relativistic-average or least-squares
    (LSGAN), playing against ``choice`` or else ``--discriminator`` (``default`` when the flag
    is empty), started from --d_pre_train; ``view``: see Adversarial."""
    name = name or ('LSGAN' if least_squares else 'RGAN' if relativistic else 'GAN')
    choice = choice or getattr(args, 'discriminator', '') or default
    net = discriminator_pkg.make_discriminator(args, choice, term=name)
    return Adversarial(relativistic=relativistic, n_colors=args.n_colors,
                       rgb_range=args.rgb_range, gan_k=args.gan_k, lr=args.lr,
                       betas=args.betas, eps=args.epsilon, weight_decay=args.weight_decay,
                       discriminator=net, view=view,
                       least_squares=least_squares)
