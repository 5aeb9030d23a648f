#!/usr/bin/env python3
"""PyTorch reference for `trainer bench`: the same network (torchvision ResNet, CIFAR stem when
the name ends in `_cifar`; timm ViT for `vit_*`/`dino_*`; the reference WideResNets of
crates/backbones/tests/fixtures/make_parity.py for `wrn*`), batch, input, loss and optimiser
(SGD, Nesterov momentum 0.9, weight decay 5e-4, lr 0.01), timed the same way. Prints one JSON
line:
{"engine": "pytorch/<device>", "train_images_per_second": ..., "eval_images_per_second": ...}
(`train_images_per_second` is null with --eval-only).

Run by `trainer bench --torch`; needs torch and torchvision (and timm for ViTs). Never run in
CI.
"""
import os
import sys
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

ARCH = {
    "resnet18": (BasicBlock, [2, 2, 2, 2], 64),
    "resnet34": (BasicBlock, [3, 4, 6, 3], 64),
    "resnet50": (Bottleneck, [3, 4, 6, 3], 64),
    "resnet101": (Bottleneck, [3, 4, 23, 3], 64),
    "resnet_small": (BasicBlock, [1, 1, 1, 1], 16),
}


VIT = {"vit_tiny_patch16": "vit_tiny_patch16_224", "vit_small_patch16": "vit_small_patch16_224",
       "vit_base_patch16": "vit_base_patch16_224", "dino_vits16": "vit_small_patch16_224",
       "dino_vitb16": "vit_base_patch16_224"}
WRN = {"wrn28_2": ("OE", 28, 2), "wrn28_10": ("OE", 28, 10), "wrn40_2": ("OE", 40, 2),
       "wrn28_2_usb": ("USB", 28, 2), "wrn28_8_usb": ("USB", 28, 8)}


def build(name, in_ch, classes, size):
    name = name.removesuffix("_224")
    if name in VIT:
        import timm
        return timm.create_model(VIT[name], pretrained=False, num_classes=classes, img_size=size,
                                 in_chans=in_ch)
    if name in WRN:
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(here, "..", "crates", "backbones", "tests", "fixtures"))
        import make_parity
        style, depth, k = WRN[name]
        if style == "OE":
            return make_parity.WideResNetOE(depth=depth, widen_factor=k, num_classes=classes)
        # USB's CIFAR networks use first_stride 1 (wrn_28_2 / wrn_28_8 in USB's builders).
        return make_parity.WideResNetUSB(first_stride=1, depth=depth, widen_factor=k,
                                         num_classes=classes)
    cifar = name.endswith("_cifar") or name == "resnet_small"
    block, layers, width = ARCH[name.removesuffix("_cifar")]
    m = ResNet(block, layers, num_classes=classes)
    # Rebuild with the first-stage width and stem Unseen uses (torchvision's own _make_layer).
    m.inplanes = width
    m.conv1 = (nn.Conv2d(in_ch, width, 3, 1, 1, bias=False) if cifar
               else nn.Conv2d(in_ch, width, 7, 2, 3, bias=False))
    m.bn1 = nn.BatchNorm2d(width)
    if cifar:
        m.maxpool = nn.Identity()
    m.layer1 = m._make_layer(block, width, layers[0])
    m.layer2 = m._make_layer(block, 2 * width, layers[1], stride=2)
    m.layer3 = m._make_layer(block, 4 * width, layers[2], stride=2)
    m.layer4 = m._make_layer(block, 8 * width, layers[3], stride=2)
    m.fc = nn.Linear(8 * width * block.expansion, classes)
    return m


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet18_cifar")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--input", default="3x32x32")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--eval-only", action="store_true")
    a = p.parse_args()
    c, h, w = (int(v) for v in a.input.split("x"))
    dev = torch.device(a.device)
    torch.manual_seed(0)
    m = build(a.model, c, a.classes, h).to(dev)
    x = torch.randn(a.batch, c, h, w, device=dev)
    y = torch.randint(0, a.classes, (a.batch,), device=dev)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()

    train = None
    if not a.eval_only:
        m.train()
        for _ in range(a.warmup):
            train_step()
        sync()
        t0 = time.perf_counter()
        for _ in range(a.iters):
            train_step()
        sync()
        train = a.iters * a.batch / (time.perf_counter() - t0)

    m.eval()
    with torch.no_grad():
        for _ in range(a.warmup):
            m(x).cpu()
        sync()
        t0 = time.perf_counter()
        for _ in range(a.iters):
            m(x).cpu()
        eval_ = a.iters * a.batch / (time.perf_counter() - t0)
    print(json.dumps({"engine": f"pytorch/{a.device}", "train_images_per_second": train,
                      "eval_images_per_second": eval_}))


if __name__ == "__main__":
    main()
