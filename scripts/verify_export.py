#!/usr/bin/env python3
"""Loads a `trainer export` file into its PyTorch module (torchvision ResNet, timm ViT, or the
reference WideResNet) with load_state_dict(strict=True) and checks the logits on the exported
sample batch.

    python3 scripts/verify_export.py model.safetensors

Builds the module from FILE.json's `pytorch` recipe (torchvision's ResNet with the CIFAR stem
= 3x3 conv1 and maxpool = Identity; timm.create_model(...) for ViTs; the WRN classes of
crates/backbones/tests/fixtures/make_parity.py), loads model.safetensors strictly, runs model.sample.safetensors' input
in eval mode and prints the max |difference| to the logits Unseen computed. An IOMatch export
(FILE.json `heads.layout = "IOMatchNet"`) is loaded into IOMatchNet(backbone) and its
`logits_open` and `logits_mb` are compared too. A GCD export (`heads.layout` "SimGCD",
"ProtoGCD" or "GCD") is loaded into nn.Sequential(backbone with an nn.Identity() head,
DINOHead) as the official code builds it, and `features`, `x_proj` and (SimGCD, ProtoGCD)
`logits` are compared. Exit code 1 if any exceeds 1e-4. Needs torch, torchvision, safetensors (and timm for ViTs). Never run in CI.
"""
import json
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file
from torchvision.models import resnet18, resnet34, resnet50, resnet101
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet


def build(info):
    pt = info["pytorch"]
    if pt["library"] == "timm":
        import timm
        return timm.create_model(pt["constructor"], pretrained=False, **pt["kwargs"])
    if pt["library"] == "reference":
        # The WideResNets of the OE / USB reference files, as rebuilt in the parity fixtures.
        import os
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(here, "..", "crates", "backbones", "tests", "fixtures"))
        import make_parity
        if pt["style"] == "oe":
            m = make_parity.WideResNetOE(depth=pt["depth"], widen_factor=pt["widen_factor"],
                                         num_classes=pt["num_classes"])
        else:  # USB's CIFAR WRNs: first_stride 1
            m = make_parity.WideResNetUSB(first_stride=1, depth=pt["depth"],
                                          widen_factor=pt["widen_factor"],
                                          num_classes=pt["num_classes"])
        if pt["in_channels"] != 3:
            m.conv1 = nn.Conv2d(pt["in_channels"], 16, 3, 1, 1, bias=pt["style"] == "usb")
        return m
    tv = pt
    k = info["num_classes"]
    block = BasicBlock if tv["block"] == "BasicBlock" else Bottleneck
    ctors = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "resnet101": resnet101}
    w = tv["base_width"]
    if tv["constructor"] in ctors:
        m = ctors[tv["constructor"]](num_classes=k)
    else:
        # Custom width: torchvision's ResNet with its own _make_layer at other widths.
        m = ResNet(block, tv["layers"], num_classes=k)
        m.inplanes = w
        m.bn1 = nn.BatchNorm2d(w)
        m.layer1 = m._make_layer(block, w, tv["layers"][0])
        m.layer2 = m._make_layer(block, 2 * w, tv["layers"][1], stride=2)
        m.layer3 = m._make_layer(block, 4 * w, tv["layers"][2], stride=2)
        m.layer4 = m._make_layer(block, 8 * w, tv["layers"][3], stride=2)
        m.fc = nn.Linear(8 * w * block.expansion, k)
    if tv["stem"] == "cifar":
        m.conv1 = nn.Conv2d(tv["in_channels"], w, 3, 1, 1, bias=False)
        m.maxpool = nn.Identity()
    else:
        m.conv1 = nn.Conv2d(tv["in_channels"], w, 7, 2, 3, bias=False)
    if not tv.get("last_relu", True):
        skip_last_relu(m.layer4[-1])
    return m


def skip_last_relu(blk):
    """`[model] last_relu = false`: the last block returns its residual sum before the final
    ReLU. torchvision's blocks share one `relu` module between their activations, so the
    block's forward is replaced (same parameters, same state-dict keys)."""

    def forward(x):
        identity = blk.downsample(x) if blk.downsample is not None else x
        out = blk.relu(blk.bn1(blk.conv1(x)))
        out = blk.bn2(blk.conv2(out))
        if isinstance(blk, Bottleneck):
            out = blk.bn3(blk.conv3(blk.relu(out)))
        return out + identity

    blk.forward = forward


def features(m, x):
    """The backbone's pooled features (what IOMatchNet feeds its heads)."""
    if hasattr(m, "features") and callable(m.features):  # the reference WRNs
        return m.features(x)
    if hasattr(m, "forward_head"):  # timm
        return m.forward_head(m.forward_features(x), pre_logits=True)
    body = nn.Sequential(*list(m.children())[:-1])  # torchvision ResNet without fc
    return torch.flatten(body(x), 1)


class IOMatchNet(nn.Module):
    """IOMatch's `IOMatchNet` (nukezil/IOMatch `semilearn/algorithms/iomatch/iomatch.py`):
    the backbone, `mlp_proj` (d -> d -> proj_size), `mb_classifiers` (2K, no bias) and
    `openset_classifier` (K + 1) on the projection."""

    def __init__(self, base, d, k, proj):
        super().__init__()
        self.backbone = base
        self.mlp_proj = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, proj))
        self.mb_classifiers = nn.Linear(proj, 2 * k, bias=False)
        self.openset_classifier = nn.Linear(proj, k + 1)

    def forward(self, x):
        feat = features(self.backbone, x)
        fc = self.backbone.get_classifier() if hasattr(self.backbone, "get_classifier") \
            else self.backbone.fc
        z = self.mlp_proj(feat)
        return {"logits": fc(feat), "logits_open": self.openset_classifier(z),
                "logits_mb": self.mb_classifiers(z)}


class DINOHead(nn.Module):
    """SimGCD's `DINOHead` (CVMI-Lab/SimGCD `model.py`; ProtoGCD's names its classifier
    `prototype_layer`): mlp = Linear-GELU-Linear-GELU-Linear, and a weight-normalised linear
    classifier (norm fixed at 1) on the L2-normalised features: cosine logits. `classifier`
    None: the projector only (GCD, whose predictions come from k-means)."""

    def __init__(self, d, k, hidden, bottleneck, classifier):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, bottleneck))
        self.classifier = classifier
        if classifier:
            layer = nn.utils.weight_norm(nn.Linear(d, k, bias=False))
            layer.weight_g.data.fill_(1)
            setattr(self, classifier, layer)

    def forward(self, x):
        out = {"features": x, "x_proj": self.mlp(x)}
        if self.classifier:
            out["logits"] = getattr(self, self.classifier)(nn.functional.normalize(x, dim=-1))
        return out


def strip_head(m):
    """The backbone with nn.Identity() as its head (its forward gives the features)."""
    if hasattr(m, "reset_classifier"):  # timm
        m.reset_classifier(0)
    else:  # torchvision ResNet, the reference WRNs
        m.fc = nn.Identity()
    return m


def main():
    path = sys.argv[1]
    stem = path[: -len(".safetensors")]
    info = json.load(open(stem + ".json"))
    m = build(info)
    heads = info.get("heads")
    if heads and heads["layout"] == "IOMatchNet":
        d = features(m.eval(), torch.zeros(1, *info["input_shape"])).shape[1]
        m = IOMatchNet(m, d, heads["num_classes"], heads["proj_size"])
    elif heads:  # SimGCD / ProtoGCD / GCD
        m = nn.Sequential(strip_head(m), DINOHead(heads["feature_dim"], heads["num_classes"],
                                                  heads["hidden_dim"], heads["bottleneck_dim"],
                                                  heads["classifier"]))
    missing_unexpected = m.load_state_dict(load_file(path), strict=True)
    print(f"load_state_dict(strict=True): {missing_unexpected}")
    sample = load_file(stem + ".sample.safetensors")
    m.eval()
    with torch.no_grad():
        out = m(sample["input"])
    out = out if isinstance(out, dict) else {"logits": out}
    worst = 0.0
    for name, got in out.items():
        want = sample[name]
        diff = (got - want).abs().max().item()
        agree = (got.argmax(1) == want.argmax(1)).float().mean().item()
        worst = max(worst, diff)
        print(f"{info['architecture']} ({info['pytorch']['library']} "
              f"{info['pytorch']['constructor']}, {info.get('weights', 'model')} weights) {name}: "
              f"max |difference| = {diff:.3e} over {tuple(got.shape)}, argmax agreement {agree:.0%}")
    sys.exit(0 if worst < 1e-4 else 1)


if __name__ == "__main__":
    main()
