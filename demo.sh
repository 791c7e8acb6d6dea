#!/usr/bin/env bash
# Demo and recipes.  Run from anywhere: `bash demo.sh`.
# The first command is active: a quick training demo on the embedded Sample data (no dataset
# needed) that evaluates on the bundled Set5 and leaves experiment/demo/metrics.json.
# The commented commands below it are the published settings; they need DIV2K in --dir_data.
set -euo pipefail
cd "$(dirname "$0")"

# Quick demo: a small EDSR, x2, L1 + SSL + SPL; about 3 minutes on 2 idle CPU cores, the SSL
# op's first-use build included; it ends above bicubic on Set5 x2 (bicubic 33.65 dB). Measured
# time and score, and how they move across machines: docs/benchmarks.md, "Demo and test suite".
python src/main.py --model EDSR --scale 2 --n_resblocks 4 --n_feats 32 \
    --data_train Sample --data_test Set5 --patch_size 64 --batch_size 16 \
    --epochs 6 --test_every 150 --lr 5e-4 --decay 5 --n_threads 2 \
    --loss '1*L1+1000*SSL+1*SPL' --ssl_stride 3 --save demo --reset

# ---------------------------------------------------------------------------------------------
# Test-only evaluation (bicubic baseline; any model with --pre_train PATH):
# python src/main.py --model Bicubic --scale 2+3+4 --data_test Set5+Set14 --dir_data ../shared --test_only --save bicubic
# python src/main.py --model EDSR --scale 2 --pre_train experiment/edsr_x2/model/model_best.pt --data_test Set5+Set14+B100+Urban100 --dir_data /data --test_only --save edsr_x2_test
# python src/main.py --model EDSR --scale 4 --pre_train download --data_test Set5 --test_only --self_ensemble --save edsr_x4_plus

# EDSR baseline (16 blocks, 64 features) on DIV2K, x2, then x3/x4 fine-tuned from x2:
# python src/main.py --model EDSR --scale 2 --patch_size 96 --dir_data /data --data_train DIV2K --data_test Set5 --save edsr_baseline_x2 --reset
# python src/main.py --model EDSR --scale 3 --patch_size 144 --dir_data /data --save edsr_baseline_x3 --reset --pre_train experiment/edsr_baseline_x2/model/model_best.pt
# python src/main.py --model EDSR --scale 4 --patch_size 192 --dir_data /data --save edsr_baseline_x4 --reset --pre_train experiment/edsr_baseline_x2/model/model_best.pt

# EDSR paper model (32 blocks, 256 features, res_scale 0.1):
# python src/main.py --template EDSR_paper --scale 2 --patch_size 96 --dir_data /data --save edsr_x2 --reset
# python src/main.py --template EDSR_paper --scale 3 --patch_size 144 --dir_data /data --save edsr_x3 --reset --pre_train experiment/edsr_x2/model/model_best.pt
# python src/main.py --template EDSR_paper --scale 4 --patch_size 192 --dir_data /data --save edsr_x4 --reset --pre_train experiment/edsr_x2/model/model_best.pt

# The same with the self-similarity loss and pixel-level self-paced learning:
# python src/main.py --model EDSR --scale 2 --patch_size 96 --dir_data /data --loss '1*L1+1000*SSL+1*SPL' --ssl_stride 3 --save edsr_baseline_x2_ssl_spl --reset
# python src/main.py --model EDSR --scale 4 --patch_size 192 --dir_data /data --loss '1*L1+1000*SSL' --ssl_stride 3 --save edsr_baseline_x4_ssl --reset

# MDSR (x2, x3, x4 in one network):
# python src/main.py --template MDSR --dir_data /data --save mdsr --reset

# RCAN (10 groups, 20 blocks) and RDN:
# python src/main.py --template RCAN --scale 2 --patch_size 96 --dir_data /data --save rcan_x2 --reset
# python src/main.py --template RDN --scale 2 --patch_size 64 --dir_data /data --save rdn_x2 --reset
# python src/main.py --template RCAN --scale 2 --patch_size 96 --dir_data /data --loss '1*L1+1000*SSL+1*SPL' --ssl_stride 3 --save rcan_x2_ssl_spl --reset

# Several GPUs (DDP; --batch_size is the global batch):
# torchrun --nproc_per_node 4 src/main.py --model EDSR --scale 2 --patch_size 96 --batch_size 64 --dir_data /data --save edsr_x2_ddp --reset

# Generative SR with SSL (ESRGAN generator fine-tuned from a PSNR-trained RRDBNet); needs the
# torchvision VGG19 weights file for the VGG54 term:
# python src/main.py --template ESRGAN_SSL --dir_data /data --pre_train experiment/rrdbnet_psnr_x4/model/model_best.pt --vgg_weights /path/to/vgg19-dcbb9e9d.pth --save esrgan_ssl_x4 --reset
