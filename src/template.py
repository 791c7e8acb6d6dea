"""Named presets for ``--template``.

A template only changes defaults (``parser.set_defaults`` before parsing), so any
flag given on the command line still wins.  Several may be joined with "+"; later
ones override earlier ones.
"""

TEMPLATES = {
    # EDSR paper model: 32 blocks, 256 features, residual scaling 0.1.
    'EDSR_paper': dict(model='EDSR', n_resblocks=32, n_feats=256, res_scale=0.1),
    'MDSR': dict(model='MDSR', patch_size=48, epochs=650, scale='2+3+4'),
    'RCAN': dict(model='RCAN', n_resgroups=10, n_resblocks=20, n_feats=64, reduction=16,
                 chop=True),
    # EDSR-PyTorch's RDN recipe; HR patch 64 is 32 LR pixels at x2 (give --patch_size 96 / 128
    # at x3 / x4 for the paper's 32x32 LR patches).
    'RDN': dict(model='RDN', G0=64, RDNconfig='B', RDNkSize=3, batch_size=16, epochs=200,
                decay='200', patch_size=64),
    # VDSR's lr 0.1 belongs to SGD with gradient clipping; with Adam (our optimizer) it
    # diverges, so Adam's usual 1e-4 is kept (the default).
    'VDSR': dict(model='VDSR', n_resblocks=20, n_feats=64, patch_size=41),
    'SRResNet': dict(model='SRResNet', n_resblocks=16, n_feats=64, patch_size=96),
    # EDSR-PyTorch's GAN fine-tuning preset.
    'GAN': dict(epochs=200, lr=5e-5, decay='150', loss='5*VGG54+0.15*GAN'),
    # Recipes copied from BasicSR/KAIR configurations set loss_range=1: their terms are computed
    # on images in [0, 1], as there, so the official weights keep their meaning (HOUSE rule 13).
    # Batch sizes are totals: the YAMLs give batch_size_per_gpu and the repository's demo.sh
    # launches 4 processes.  SSL: mask stride 1 (every edge pixel), what the released
    # BasicSR models ran: they read mask_stride from train:, the YAMLs set it under
    # ssl_setting: (docs/recipes.md; --ssl_stride 3 gives the declared setting).
    # The SSL paper's ESRGAN recipe (SSL repo GAN-Based-SR/options/train/ESRGANSSL/
    # train_ESRGANSSL_bicubic_x4.yml, esrganssl_model.py): ESRGAN generator fine-tuned from
    # a PSNR model with L1, VGG54 (L1 distance, as BasicSR's perceptual loss), relativistic
    # GAN (the YAML says vanilla, the model hard-codes RaGAN) against BasicSR's
    # VGGStyleDiscriminator (128), SSL (its L1 and KL parts each weighted 1e3).  128 patches,
    # 64 per GPU x 4; 400k iterations halving the lr at 50k, 100k, 200k and 300k (--test_every
    # 1000 iterations per epoch); trains on DF2K + OST (src/prepare_data.py writes them).
    'ESRGAN_SSL': dict(model='RRDBNet', scale='4', patch_size=128, batch_size=256, lr=1e-4,
                       betas=(0.9, 0.99), epochs=400, decay='50-100-200-300', gamma=0.5,
                       n_feats=64, n_rrdb=23, rrdb_growth=32,
                       ssl_search=25, ssl_window=9, ssl_sigma=0.004, ssl_stride=1,
                       ssl_kl=1.0, vgg_criterion='l1', loss='0.01*L1+1*VGG54+0.005*RGAN+1000*SSL',
                       discriminator='vgg128', loss_range=1, ema_decay=0.999,
                       data_train='DF2K+OST'),
    # LDL + SSL (GAN-Based-SR/options/train/LDLSSL/train_LDLSSL_bicubic_x4.yml,
    # ldlssl_model.py): RRDBNet from ESRGAN's PSNR file (--pre_train reads its params_ema, as
    # param_key_g), EMA 0.999 (the artifact map needs the EMA output), 0.01*L1 + 1*LDL
    # (artifact map, window 7) + 1*multi-layer VGG19 (L1; conv1_2 .1, conv2_2 .1, conv3_4,
    # conv4_4, conv5_4 1) + 0.005*relativistic GAN (the YAML says vanilla; the model
    # hard-codes RaGAN) with VGGStyleDiscriminator (128) + SSL; 128 patches, 64 per GPU x 4;
    # 300k iterations at a constant lr (milestone 200k with gamma 1); DF2K.
    'LDL_SSL': dict(model='RRDBNet', scale='4', patch_size=128, batch_size=256, lr=1e-4,
                    betas=(0.9, 0.99), epochs=300, decay='200', gamma=1.0,
                    n_feats=64, n_rrdb=23, rrdb_growth=32,
                    ssl_search=25, ssl_window=9, ssl_sigma=0.004, ssl_stride=1, ssl_kl=1.0,
                    vgg_criterion='l1',
                    loss='0.01*L1+1*LDL+1*PERCEPTUAL+0.005*RGAN+1000*SSL',
                    discriminator='vgg128', loss_range=1, ema_decay=0.999, data_train='DF2K'),
    # ELAN (Zhang et al. 2022) as the SSL repository's network_g (elan_arch.py,
    # train_ELANGANSSL_bicubic_x4.yml): 36 blocks of 180 features, windows 4/8/16, expansion
    # 2, no shared attention, img_range 255.  The scale comes from --scale.
    'ELAN': dict(model='ELAN', m_elan=36, c_elan=180, elan_windows=(4, 8, 16), r_expand=2,
                 n_share=0, elan_img_range=255.0),
    # ELAN-light, the ELAN paper's small model: 24 blocks of 60 features, otherwise as ELAN.
    'ELAN_light': dict(model='ELAN', m_elan=24, c_elan=60, elan_windows=(4, 8, 16),
                       r_expand=2, n_share=0, elan_img_range=255.0),
    # ELAN-GAN + SSL (GAN-Based-SR/options/train/ELANGANSSL/train_ELANGANSSL_bicubic_x4.yml,
    # elanganssl_model.py): ELAN x4 from an ELAN PSNR file (--pre_train, 'params'), EMA
    # 0.999, 0.01*L1 + 1*VGG54 (L1) + 0.005*relativistic GAN (gan_loss_compute: RaGAN) with
    # Discriminator_VGG_192 + SSL; 192 patches, 16 per GPU x 4; 300k iterations halving the
    # lr at 200k, 250k, 275k, 287.5k: epochs of 500 iterations (the YAML's val_freq) make
    # those 400-500-550-575 of 600; trains on DIV2K (1-800; the official run on its
    # multiscale sub-images, here on the whole HR images).
    'ELANGAN_SSL': dict(model='ELAN', m_elan=36, c_elan=180, elan_windows=(4, 8, 16),
                        r_expand=2, n_share=0, elan_img_range=255.0,
                        scale='4', patch_size=192, batch_size=64, lr=1e-4, betas=(0.9, 0.99),
                        test_every=500, epochs=600, decay='400-500-550-575', gamma=0.5,
                        ssl_search=25, ssl_window=9, ssl_sigma=0.004, ssl_stride=1,
                        ssl_kl=1.0, vgg_criterion='l1',
                        loss='0.01*L1+1*VGG54+0.005*RGAN+1000*SSL',
                        discriminator='vgg192', loss_range=1, ema_decay=0.999),
    # SwinIR-GAN + SSL (GAN-Based-SR/options/train/SwinIRGANSSL/
    # train_SwinIRGANSSL_bicubic_x4.yml, swinirganssl_model.py): SwinIR-M classical x4
    # (img_size 64, window 8) from 001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth, EMA 0.999,
    # 0.01*L1 + 1*VGG54 (L1) + 0.005*relativistic GAN (the YAML says vanilla; the model
    # hard-codes RaGAN) with VGGStyleDiscriminator(input_size=256) + SSL; 256 patches, 4 per
    # GPU x 4; 100k iterations halving the lr at 50k, 80k, 90k, 95k (and 100k, the end);
    # DF2K.
    'SwinIRGAN_SSL': dict(model='SwinIR', window_size=8, embed_dim=180, depths=(6,) * 6,
                          num_heads=(6,) * 6, mlp_ratio=2.0, upsampler='pixelshuffle',
                          resi_connection='1conv', img_size=64,
                          scale='4', patch_size=256, batch_size=16, lr=1e-4, betas=(0.9, 0.99),
                          epochs=100, decay='50-80-90-95', gamma=0.5,
                          ssl_search=25, ssl_window=9, ssl_sigma=0.004, ssl_stride=1,
                          ssl_kl=1.0, vgg_criterion='l1',
                          loss='0.01*L1+1*VGG54+0.005*RGAN+1000*SSL',
                          discriminator='vgg256', loss_range=1, ema_decay=0.999,
                          data_train='DF2K'),
    # SwinIR (Liang et al. 2021) as the official main_test_swinir.py builds it; the scale
    # comes from --scale, --img_size (the files' training LR patch, 64 by default) from
    # --pre_train.  SwinIR-M, classical SR:
    'SwinIR_classical': dict(model='SwinIR', window_size=8, embed_dim=180, depths=(6,) * 6,
                             num_heads=(6,) * 6, mlp_ratio=2.0, upsampler='pixelshuffle',
                             resi_connection='1conv'),
    # SwinIR-S, lightweight SR:
    'SwinIR_lightweight': dict(model='SwinIR', window_size=8, embed_dim=60, depths=(6,) * 4,
                               num_heads=(6,) * 4, mlp_ratio=2.0,
                               upsampler='pixelshuffledirect', resi_connection='1conv'),
    # SwinIR-M, real-world SR (BSRGAN degradations, the GAN files), x4:
    'SwinIR_real': dict(model='SwinIR', scale='4', window_size=8, embed_dim=180,
                        depths=(6,) * 6, num_heads=(6,) * 6, mlp_ratio=2.0,
                        upsampler='nearest+conv', resi_connection='1conv'),
    # SwinIR-L, real-world SR, x4:
    'SwinIR_large': dict(model='SwinIR', scale='4', window_size=8, embed_dim=240,
                         depths=(6,) * 9, num_heads=(8,) * 9, mlp_ratio=2.0,
                         upsampler='nearest+conv', resi_connection='3conv'),
    # The SSL repository's RealESRGANSSL recipe (train_RealESRGANSSL_x4.yml): RRDBNet x4
    # fine-tuned from a RealESRNet file (--pre_train reads its 'params_ema'), HR patches of
    # 256 degraded on the fly with the realesrgan_ssl preset and a 180-pair pool, batch 12,
    # 1*L1 + 1*multi-layer VGG19 (L1) + 0.1*vanilla GAN with the U-Net SN discriminator +
    # SSL (L1 and KL parts 1e3 each), Adam 1e-4 (0.9, 0.99) for both networks, 150k
    # iterations with the lr halved at 100k (--test_every 1000), no EMA; 12 per GPU x 4.
    # --ssl_stride 1: the released config declares mask_stride 3 under ssl_setting but the
    # model reads it from train, so the released run used every edge pixel (docs/recipes.md).
    'RealESRGAN_SSL': dict(model='RRDBNet', scale='4', patch_size=256, batch_size=48, lr=1e-4,
                           betas=(0.9, 0.99), epochs=150, decay='100', gamma=0.5,
                           n_feats=64, n_rrdb=23, rrdb_growth=32,
                           degradation='realesrgan_ssl', degradation_pool=180,
                           ssl_search=25, ssl_window=9, ssl_sigma=0.004, ssl_stride=1,
                           ssl_kl=1.0, vgg_criterion='l1', loss_range=1,
                           loss='1*L1+1*PERCEPTUAL+0.1*UGAN+1000*SSL', discriminator='unet',
                           data_train='DF2K+OST'),
    # The SSL repository's three other GAN recipes (issue 30).  Official hyper-parameters;
    # batch_size is the total: the configs give batch_size_per_gpu for 4 GPUs (G/demo.sh).
    # --ssl_stride 1: the configs put mask_stride 3 under ssl_setting, but the models read it
    # from train, so the released runs used every edge pixel (as RealESRGAN_SSL).
    # GAN-Based-SR/options/train/SPSRSSL/train_SPSRSSL_bicubic_x4.yml: SPSRNet 64/23/32 from
    # the SPSR-PSNR file (--pre_train, 'params_ema'), HR patches 128, 30 per GPU, EMA 0.999;
    # L1 1e-2, gradient-map MSE 1e-2, gradient-branch L1 0.5, VGG19 conv5_4 (L1) 1,
    # relativistic GAN 5e-3 on images (VGG-128) and 5e-3 on gradient maps (a second VGG-128:
    # --d_grad_pre_train), SSL 1e3 (+ KL 1e3); Adam 1e-4 (0.9, 0.99) for the generator and
    # both discriminators; 400k iterations halving at 50k, 100k, 200k, 300k.
    'SPSR_SSL': dict(model='SPSR', scale='4', patch_size=128, batch_size=120, lr=1e-4,
                     betas=(0.9, 0.99), epochs=400, decay='50-100-200-300', gamma=0.5,
                     n_feats=64, n_rrdb=23, rrdb_growth=32, ema_decay=0.999,
                     ssl_search=25, ssl_window=9, ssl_sigma=0.004, ssl_stride=1, ssl_kl=1.0,
                     vgg_criterion='l1', discriminator='vgg128', loss_range=1,
                     loss='0.01*L1+0.01*GRAD_MSE+0.5*BRANCH_L1+1*VGG54+0.005*RGAN'
                          '+0.005*GRAD_RGAN+1000*SSL'),
    # GAN-Based-SR/options/train/BebyGANSSL/train_BebyGANSSL_bicubic_x4.yml: RRDBNet 64/23/32
    # from BebyGAN's RRDB_warmup.pth (old ESRGAN key names, a plain state_dict), HR patches
    # 192, 16 per GPU, EMA 0.999; best-buddy L1 1, back-projection L1 1, VGG19 conv3_4 /
    # conv4_4 / conv5_4 (L1) 0.125 / 0.25 / 0.5, region-aware relativistic GAN 5e-3
    # (Discriminator_VGG_192), SSL 1e3 (+ KL 1e3); Adam 1e-4 (0.9, 0.99); 600k iterations
    # halving at 200k, 400k.
    'BebyGAN_SSL': dict(model='RRDBNet', scale='4', patch_size=192, batch_size=64, lr=1e-4,
                        betas=(0.9, 0.99), epochs=600, decay='200-400', gamma=0.5,
                        n_feats=64, n_rrdb=23, rrdb_growth=32, ema_decay=0.999,
                        ssl_search=25, ssl_window=9, ssl_sigma=0.004, ssl_stride=1, ssl_kl=1.0,
                        vgg_criterion='l1', perceptual_layers='conv3_4:0.125+conv4_4:0.25'
                                                              '+conv5_4:0.5',
                        discriminator='vgg192', loss_range=1,
                        loss='1*BBL+1*BP+1*PERCEPTUAL+0.005*REGION_RGAN+1000*SSL'),
    # GAN-Based-SR/options/train/RankSRGANPISSL/train_RankSRGANPISSL_bicubic_x4.yml:
    # RankSRGAN's SRResNet (no BN) 64/16 from mmsr_SRResNet_pretrain.pth, the PI ranker
    # mmsr_Ranker_PI.pth (--ranker_pre_train), HR patches 296, 32 per GPU, EMA 0.999; L1 1e-2,
    # rank 3e-2 (R_bias 0; the paper's term by default, --rank_released for the released
    # one), VGG19 conv5_4 (L1) 1, vanilla GAN 5e-3 (gan_loss_compute 'GAN',
    # Discriminator_VGG_296), SSL 1e3 (+ KL 1e3); Adam 1e-4 (0.9, 0.99); 500k iterations
    # halving at 50k, 100k, 200k, 300k.
    'RankSRGANPI_SSL': dict(model='RankSRGAN', scale='4', patch_size=296, batch_size=128,
                            lr=1e-4, betas=(0.9, 0.99), epochs=500, decay='50-100-200-300',
                            gamma=0.5, n_feats=64, n_resblocks=16, ema_decay=0.999,
                            ssl_search=25, ssl_window=9, ssl_sigma=0.004, ssl_stride=1,
                            ssl_kl=1.0, vgg_criterion='l1', discriminator='vgg296', loss_range=1,
                            loss='0.01*L1+0.03*RANK+1*VGG54+0.005*GAN+1000*SSL'),
    # The SSL paper's diffusion recipe (ChrisDud0257/SSL Diffusion-Based-SR/configs/SSL/base.yaml,
    # the config its README trains with; loss terms in ldm/models/diffusion/ddpmssl.py), carried
    # to a pixel-space SR3 model (--model DiffSR) since StableSR's SD-2.1 weights cannot be had:
    # x4, eps prediction with t uniform over 1000 steps (the schedule is in model/diffsr.py),
    # loss = 1 * eps MSE + 0.1 * L1(x0, HR) + SSL(x0, HR) with L1 and KL parts 0.5 each
    # (base.yaml's ISSL_loss; configs/StableSRISSLStage1 has 500/500), mask stride 3, search
    # 25, window 9, sigma 0.004, edge threshold 20; HR patches 512, lr 5e-5 constant (AdamW
    # there, Adam here), batch 2 x 2 GPUs x 12 accumulated = 48, 800k iterations (--test_every
    # 1000), no EMA; sampling: 200 steps as its test.py --ddpm_steps 200 (DDIM here).
    # loss_range 1: the HR image there is in [0, 1] (see docs/diffusion.md).
    'DiffSR_SSL': dict(model='DiffSR', scale='4', patch_size=512, batch_size=48, lr=5e-5,
                       epochs=800, decay='800', unet_channels=(64, 128, 256, 512),
                       unet_layers=2, diffusion_steps=200,
                       ssl_search=25, ssl_window=9, ssl_sigma=0.004, ssl_threshold=20.0,
                       ssl_stride=3, ssl_kl=1.0, loss_range=1,
                       loss='1*EPS+0.1*L1+0.5*SSL'),
    # The SSL repository's KAIR-based BSRGAN recipes (GAN-Based-SR/train_BSGRAN/options/BSRGAN/
    # train_*SSL*_x4.json, models/model_ssl.py): HR patches degraded on the fly by
    # --degradation bsrgan (KAIR degradation_bsrgan, no ISP), 1*L1 + 1*VGG19 layers
    # [2,7,16,25,34] x (0.1,0.1,1,1,1) (L1, input-normalised: PERCEPTUAL) + 1*LSGAN with KAIR's
    # Discriminator_UNet + SSL 500 (L1) + 500 (KL) with the mask stride 3 applied (KAIR's
    # model_ssl.py applies it), all on [0, 1] images (loss_range 1); Adam 1e-4 with torch's
    # default betas for G and D; E_decay 0.999; lr halved at the milestones; the JSON batch is
    # the total over GPUs (main_train_SSL.py divides it).  --pre_train reads KAIR's 0_G.pth
    # layout, --d_pre_train KAIR's *_D.pth.  1 epoch = --test_every iterations.
    # train_BSRGANSSL_DF2K_OST_x4.json: RRDBNet 64/23/32 from BSRGAN_PSNR/0_G.pth, HR 256,
    # batch 48, 150k iterations, milestones 40k, 80k.
    'BSRGAN_SSL': dict(model='RRDBNet', scale='4', n_feats=64, n_rrdb=23, rrdb_growth=32,
                       patch_size=256, batch_size=48, lr=1e-4, betas=(0.9, 0.999),
                       test_every=1000, epochs=150, decay='40-80', gamma=0.5, ema_decay=0.999,
                       degradation='bsrgan', ssl_search=25, ssl_window=9, ssl_sigma=0.004,
                       ssl_stride=3, ssl_kl=1.0, vgg_criterion='l1', loss_range=1,
                       loss='1*L1+1*PERCEPTUAL+1*LSGAN+500*SSL'),
    # train_ELANGANSSL_BSRGAN_DF2K_OST_x4.json: ELAN x4 (m 36, c 180, windows 4/8/16, r_expand 2,
    # n_share 0, img_range 255) from ELAN_BSRGAN/0_G.pth, HR 192 (LR 48), batch 64, 300k
    # iterations, milestones 200k, 250k, 275k, 287.5k (epochs of 500 iterations).
    'ELANGAN_BSRGAN_SSL': dict(
        model='ELAN', scale='4', m_elan=36, c_elan=180, elan_windows=(4, 8, 16), r_expand=2,
        n_share=0, elan_img_range=255.0, patch_size=192, batch_size=64, lr=1e-4,
        betas=(0.9, 0.999), test_every=500, epochs=600, decay='400-500-550-575', gamma=0.5,
        ema_decay=0.999, degradation='bsrgan', ssl_search=25, ssl_window=9, ssl_sigma=0.004,
        ssl_stride=3, ssl_kl=1.0, vgg_criterion='l1', loss_range=1,
        loss='1*L1+1*PERCEPTUAL+1*LSGAN+500*SSL'),
    # train_SwinIRGANSSL_BSRGAN_DF2K_OST_x4.json: SwinIR-M classical (img_size 64, window 8,
    # embed 180, depths and heads 6x6, mlp 2, pixelshuffle, 1conv, img_range 1) from
    # SwinIR_BSRGAN/0_G.pth, HR 256, batch 16, 300k iterations, milestones as written
    # [200k, 250k, 375k, 287.5k]: the lr halves at 200k, 250k and 287.5k, 375k is past the end
    # (epochs of 500 iterations, so that 287.5k is a whole epoch).
    'SwinIRGAN_BSRGAN_SSL': dict(
        model='SwinIR', scale='4', img_size=64, window_size=8, embed_dim=180,
        depths=(6,) * 6, num_heads=(6,) * 6, mlp_ratio=2.0, upsampler='pixelshuffle',
        resi_connection='1conv', patch_size=256, batch_size=16, lr=1e-4, betas=(0.9, 0.999),
        test_every=500, epochs=600, decay='400-500-750-575', gamma=0.5, ema_decay=0.999,
        degradation='bsrgan', ssl_search=25, ssl_window=9, ssl_sigma=0.004, ssl_stride=3,
        ssl_kl=1.0, vgg_criterion='l1', loss_range=1,
        loss='1*L1+1*PERCEPTUAL+1*LSGAN+500*SSL'),
}


# Evaluation protocols for --protocol: values of the switches of option.py's "evaluation
# protocol" group (and the DIV2K test range), applied as defaults like a template.
PROTOCOLS = {
    # EDSR-PyTorch (src/utility.py calc_psnr): rounded Y, shave scale on benchmarks and
    # scale + 6 on DIV2K (RGB), LR made from HR cropped to a multiple of the scale.
    'edsr': dict(y_channel='rounded', crop_border='edsr', hr_modcrop=0, div2k_benchmark=False),
    # The SSL paper's evaluation (ChrisDud0257/SSL GAN-Based-SR/scripts/metrics/
    # calculate_psnr_ssim.py with BasicSR's metric_util.to_y_channel: float Y, crop_border 4 at
    # x4 for every metric; datasets/README_TEST.MD: GTmod12 HR images; DIV2K100 = 801-900
    # evaluated like the other test sets).
    'ssl_paper': dict(y_channel='float', crop_border='scale', hr_modcrop=12,
                      div2k_benchmark=True, data_range='1-800/801-900'),
}


def defaults(names, parser):
    """Merged defaults of the templates named in ``names`` ('.' = none)."""
    merged = {}
    if names in ('', '.'):
        return merged
    for name in names.split('+'):
        name = name.strip()
        if name not in TEMPLATES:
            parser.error(f'unknown --template {name!r}; available: {", ".join(sorted(TEMPLATES))}')
        merged.update(TEMPLATES[name])
    return merged
