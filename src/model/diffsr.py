"""DiffSR: conditional diffusion SR in pixel space (SR3's conditioning) on ``diffusers``.

The denoiser is diffusers' ``UNet2DModel``; it sees the noisy HR estimate x_t and the
bicubic-upsampled LR image, concatenated along the channels (SR3, Saharia et al. 2021),
and predicts the noise (eps).  Images are mapped to [-1, 1] inside the network.

Training (``net(lr, hr=hr)``, the step protocol's ``TRAIN_INPUTS``): t uniform over all
``T = 1000`` steps and eps ~ N(0, 1) as in the SSL repository's ``ddpmssl.py``; x_t is
diffusers' ``DDPMScheduler.add_noise``; the clean estimate is recovered from the predicted
noise, ``x0 = (x_t - sqrt(1 - abar_t) * eps_pred) / sqrt(abar_t)`` (ldm's
``predict_start_from_noise``), and returned as ``'sr'`` in [0, rgb_range] (not clamped,
so every loss term of the project applies to it), with ``'noise'`` and ``'noise_pred'``
for the EPS term.  t and the noise come from torch's global generator (saved in the
checkpoint, so a resumed run draws the same); under DDP every rank draws the global
batch's worth and keeps its own slice, so the ranks stay in step and differ.

Evaluation (``net(lr)``): ``--diffusion_steps`` steps of DDIM (eta 0) or DPM-Solver++
(both deterministic after the start) from x_T drawn with a private generator seeded by
``--sample_seed`` and the bytes of the LR image: the same image and seed give the same SR
whatever else was evaluated before, and nothing touches the training random stream.
Each tile of ``--chop`` and each view of ``--self_ensemble`` is its own input, so it gets
its own noise (see docs/diffusion.md).
"""
import hashlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import utility
from imresize import imresize

SCALES = (2, 3, 4)
TRAIN_INPUTS = ('hr',)
AUX_OUTPUTS = ('noise', 'noise_pred')
RAW_OUTPUTS = ('noise', 'noise_pred')
# Flags only this model reads (refused for other models, HOUSE rule 15).
FLAGS = ('unet_channels', 'unet_layers', 'unet_attention', 'diffusion_steps',
         'diffusion_sampler', 'sample_seed')

# The noise schedule of configs/SSL/base.yaml in ChrisDud0257/SSL (Diffusion-Based-SR):
# timesteps 1000, linear_start 0.00085, linear_end 0.012 with ldm's "linear" schedule,
# which is linear in sqrt(beta): diffusers calls it "scaled_linear".
TRAIN_TIMESTEPS = 1000
BETA_START, BETA_END, BETA_SCHEDULE = 0.00085, 0.012, 'scaled_linear'
SAMPLERS = ('ddim', 'dpm')


def make_model(args):
    return DiffSR(scale=args.scale[0], n_colors=args.n_colors, rgb_range=args.rgb_range,
                  channels=tuple(args.unet_channels), layers=args.unet_layers,
                  attention=args.unet_attention, steps=args.diffusion_steps,
                  sampler=args.diffusion_sampler, seed=args.sample_seed)


def _import_diffusers():
    try:
        import diffusers
    except ImportError:
        raise utility.UserError('--model DiffSR needs the diffusers package: '
                                'pip install diffusers') from None
    return diffusers


def noise_schedule():
    """diffusers' DDPMScheduler with the official schedule (training noise, x0 recovery)."""
    return _import_diffusers().DDPMScheduler(
        num_train_timesteps=TRAIN_TIMESTEPS, beta_start=BETA_START, beta_end=BETA_END,
        beta_schedule=BETA_SCHEDULE, prediction_type='epsilon', clip_sample=False)


def sample_seed(seed, image):
    """The seed of x_T for one LR image [C, h, w]: SHA-256 of ``seed`` and the image's
    float32 bytes, as a 63-bit integer."""
    digest = hashlib.sha256(str(int(seed)).encode())
    digest.update(image.detach().float().cpu().contiguous().numpy().tobytes())
    return int.from_bytes(digest.digest()[:8], 'little') >> 1


def _world():
    """(rank, world size) of the process group, (0, 1) without one."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class DiffSR(nn.Module):
    """LR [B, C, h, w] in [0, rgb_range] -> SR [B, C, s*h, s*w] (float, not clamped).

    channels: UNet features per level (each level after the first halves the size, so the
    HR side is padded to a multiple of 2**(levels-1) by edge replication and cropped back);
    layers: ResNet blocks per level; attention: self-attention in the lowest level and the
    middle block (global over the lowest level's pixels, so costly on large images);
    steps, sampler: sampling steps and scheduler ('ddim' or 'dpm'); seed: sampling seed.
    """

    def __init__(self, scale=4, n_colors=3, rgb_range=255, channels=(64, 128, 256),
                 layers=2, attention=False, steps=20, sampler='ddim', seed=0):
        super().__init__()
        diffusers = _import_diffusers()
        if sampler not in SAMPLERS:
            raise utility.UserError(f'--diffusion_sampler {sampler!r}: use one of '
                                    f'{", ".join(SAMPLERS)}')
        self.scale, self.rgb_range, self.steps = int(scale), float(rgb_range), int(steps)
        self.sampler, self.seed = sampler, int(seed)
        self.multiple = 2 ** (len(channels) - 1)
        groups = min(32, math.gcd(*channels))
        down = ['DownBlock2D'] * len(channels)
        up = ['UpBlock2D'] * len(channels)
        if attention:
            down[-1], up[0] = 'AttnDownBlock2D', 'AttnUpBlock2D'
        self.unet = diffusers.UNet2DModel(
            in_channels=2 * n_colors, out_channels=n_colors, block_out_channels=tuple(channels),
            layers_per_block=layers, down_block_types=tuple(down), up_block_types=tuple(up),
            norm_num_groups=groups, attention_head_dim=min(8, channels[-1]),
            add_attention=bool(attention))   # the mid block's attention: global, costly
        self.schedule = noise_schedule()
        # abar_t, moved with the module; not saved (it follows from the constants above).
        self.register_buffer('alphas_cumprod', self.schedule.alphas_cumprod.clone().float(),
                             persistent=False)

    # ----------------------------------------------------------------- pieces
    def to_unit(self, x):
        """[0, rgb_range] -> [-1, 1]."""
        return x * (2.0 / self.rgb_range) - 1.0

    def from_unit(self, x):
        """[-1, 1] -> [0, rgb_range]."""
        return (x + 1.0) * (self.rgb_range / 2.0)

    def condition(self, lr):
        """The bicubic-upsampled LR image in [-1, 1] (MATLAB imresize), [B, C, s*h, s*w]."""
        return self.to_unit(imresize(lr, scale=self.scale))

    def eps(self, x_t, cond, t):
        """The UNet's noise prediction for x_t [B, C, H, W] given cond and t [B] (long)."""
        h, w = x_t.shape[-2:]
        m = self.multiple
        ph, pw = -h % m, -w % m
        x = torch.cat([x_t, cond], 1)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode='replicate')
        return self.unet(x, t).sample[..., :h, :w]

    def predict_x0(self, x_t, t, eps):
        """x0 = (x_t - sqrt(1 - abar_t) * eps) / sqrt(abar_t), per sample t [B]."""
        abar = self.alphas_cumprod.to(x_t.device)[t].view(-1, 1, 1, 1)
        return (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()

    def _draw(self, x0):
        """(t [B], noise like x0) from the global generator; under DDP each rank keeps its
        slice of the global batch's draw, so the ranks' generators stay equal."""
        rank, world = _world()
        b = x0.shape[0]
        t = torch.randint(0, TRAIN_TIMESTEPS, (world * b,))[rank * b:(rank + 1) * b]
        noise = torch.randn((world * b,) + tuple(x0.shape[1:]))[rank * b:(rank + 1) * b]
        return t.to(x0.device), noise.to(device=x0.device, dtype=x0.dtype)

    def make_sampler(self):
        """A fresh sampling scheduler (same betas as training), set to ``steps`` steps."""
        diffusers = _import_diffusers()
        kind = (diffusers.DDIMScheduler if self.sampler == 'ddim'
                else diffusers.DPMSolverMultistepScheduler)
        extra = dict(clip_sample=True, set_alpha_to_one=True) if self.sampler == 'ddim' \
            else dict(algorithm_type='dpmsolver++', solver_order=2)
        # 'trailing': the first step starts from t = T - 1 also with few steps.
        sched = kind(num_train_timesteps=TRAIN_TIMESTEPS, beta_start=BETA_START,
                     beta_end=BETA_END, beta_schedule=BETA_SCHEDULE, prediction_type='epsilon',
                     timestep_spacing='trailing', **extra)
        sched.set_timesteps(self.steps)
        return sched

    def initial_noise(self, lr, shape):
        """x_T [B, C, H, W]: each sample's from its own generator (``sample_seed``)."""
        out = []
        for image in lr:
            g = torch.Generator().manual_seed(sample_seed(self.seed, image))
            out.append(torch.randn(shape, generator=g))
        return torch.stack(out).to(lr.device)

    # ----------------------------------------------------------------- forward
    def forward(self, lr, hr=None):
        if self.training:
            if hr is None:
                raise ValueError('DiffSR in training needs the HR batch: net(lr, hr=hr)')
            return self.training_step(lr, hr)
        return self.sample(lr)

    def training_step(self, lr, hr):
        """{'sr': x0 estimate in [0, rgb_range], 'noise': eps, 'noise_pred': the UNet's}."""
        cond = self.condition(lr)
        x0 = self.to_unit(hr)
        t, noise = self._draw(x0)
        x_t = self.schedule.add_noise(x0, noise, t)
        eps = self.eps(x_t, cond, t)
        return {'sr': self.from_unit(self.predict_x0(x_t, t, eps.float())),
                'noise': noise, 'noise_pred': eps}

    @torch.no_grad()
    def sample(self, lr):
        """SR [B, C, s*h, s*w] in [0, rgb_range] by ``steps`` sampler steps."""
        cond = self.condition(lr)
        sched = self.make_sampler()
        x = self.initial_noise(lr, cond.shape[1:]) * sched.init_noise_sigma
        for t in sched.timesteps:
            eps = self.eps(sched.scale_model_input(x, t), cond, t.to(x.device).expand(len(x)))
            x = sched.step(eps.float(), t, x).prev_sample
        return self.from_unit(x)
