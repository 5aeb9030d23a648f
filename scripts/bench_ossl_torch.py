#!/usr/bin/env python3
"""PyTorch reference for `trainer bench --config <fixmatch|iomatch config>`: one training
iteration of USB's `train_step` (as vendored by nukezil/IOMatch), timed the same way as
Unseen's `ossl::train_step`. Prints one JSON line:
{"engine": "pytorch/<device>", "iterations_per_second": ..., "train_images_per_second": ...,
 "views_iterations_per_second": null}

What one iteration does, after USB (`semilearn/core/algorithmbase.py`, `hooks/param_update.py`,
`hooks/ema.py`, `algorithms/{fixmatch,iomatch}/*.py`):
- the batch `cat(x_lb, x_ulb_w, x_ulb_s)` (B + 2μB images) is copied host -> device (USB's
  loader hands CPU tensors to `train_step`), then forwarded in one pass (`use_cat = True`);
- FixMatch: CE on the labelled logits + masked hard pseudo-label CE on the strong view;
  IOMatch: CE + the one-vs-all loss `mb_sup_loss` on the labelled images, the open-set
  targets q from the weak view's p and one-vs-all probabilities, `ui_loss` (soft CE masked by
  `max p >= p_cutoff` and inlier) and `op_loss` (soft CE of the open-set head masked by
  `max q >= q_cutoff`), as in epoch >= 1;
- `loss.backward()`, `optimizer.step()` (SGD, Nesterov, momentum 0.9, weight decay on all but
  BatchNorm and bias parameters, as USB's `get_optimizer`), `scheduler.step()`,
  `model.zero_grad()`;
- the EMA update (`EMA.update` + the two `load_state_dict` calls of `EMAHook`);
- the per-iteration `.item()` reads of USB's `tb_dict`.
The network is the one `trainer bench --torch` uses (scripts/bench_torch.py `build`: the
USB WideResNet of crates/backbones/tests/fixtures/make_parity.py for `wrn*_usb`), with
IOMatch's heads (`IOMatchNet`: projector d -> d -> proj, `mb_classifiers` 2K without bias,
`openset_classifier` K + 1). Images are normal noise; the data pipeline is not timed (USB's
loader runs in worker processes).

Run by `trainer bench --config ... --torch`; needs torch (and torchvision for the ResNets).
Never run in CI.
"""
import argparse
import copy
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def backbone(name, in_ch, classes, size):
    """(features module, closed-set linear head, feature size)."""
    here = os.path.dirname(os.path.abspath(__file__))
    if name.startswith("wrn") and name.endswith("_usb"):
        sys.path.insert(0, os.path.join(here, "..", "crates", "backbones", "tests", "fixtures"))
        import make_parity
        depth, k = {"wrn28_2_usb": (28, 2), "wrn28_8_usb": (28, 8)}[name]
        net = make_parity.WideResNetUSB(first_stride=1, num_classes=classes, depth=depth,
                                        widen_factor=k)

        class Feats(nn.Module):
            def __init__(self, net):
                super().__init__()
                self.net = net

            def forward(self, x):
                return self.net.features(x)

        return net, Feats(net), net.fc, net.channels
    sys.path.insert(0, here)
    import bench_torch
    net = bench_torch.build(name, in_ch, classes, size)
    fc = net.fc
    net.fc = nn.Identity()
    return nn.ModuleList([net, fc]), net, fc, fc.in_features


class OsslNet(nn.Module):
    """USB's model for the recipe: `{'logits', 'logits_mb', 'logits_open'}`."""

    def __init__(self, name, in_ch, classes, size, iomatch, proj):
        super().__init__()
        self.owner, self.feats, self.fc, d = backbone(name, in_ch, classes, size)
        self.iomatch = iomatch
        if iomatch:
            self.mlp_proj = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, proj))
            self.mb_classifiers = nn.Linear(proj, 2 * classes, bias=False)
            self.openset_classifier = nn.Linear(proj, classes + 1)
            nn.init.xavier_normal_(self.mb_classifiers.weight.data)
            nn.init.xavier_normal_(self.openset_classifier.weight.data)
            self.openset_classifier.bias.data.zero_()

    def forward(self, x):
        feat = self.feats(x)
        out = {"logits": self.fc(feat)}
        if self.iomatch:
            z = self.mlp_proj(feat)
            out["logits_open"] = self.openset_classifier(z)
            out["logits_mb"] = self.mb_classifiers(z)
        return out


def mb_sup_loss(logits_ova, label):
    """OpenMatch's hard-negative one-vs-all loss on the labelled images (`mb_sup_loss`)."""
    n = logits_ova.size(0)
    probs = F.softmax(logits_ova.view(n, 2, -1), 1)
    pos = F.one_hot(label, probs.size(2)).float()
    open_loss = torch.mean(torch.sum(-torch.log(probs[:, 1, :] + 1e-8) * pos, 1))
    open_loss_neg = torch.mean(torch.max(-torch.log(probs[:, 0, :] + 1e-8) * (1 - pos), 1)[0])
    return open_loss_neg + open_loss


def soft_ce(logits, targets, mask):
    """USB `consistency_loss(..., 'ce', mask)` with soft targets."""
    return (torch.sum(-targets * F.log_softmax(logits, -1), -1) * mask).mean()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--recipe", choices=["fixmatch", "iomatch"], default="iomatch")
    p.add_argument("--model", default="wrn28_2_usb")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--mu", type=int, default=7)
    p.add_argument("--input", default="3x32x32")
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--proj-dim", type=int, default=128)
    p.add_argument("--p-cutoff", type=float, default=0.95)
    p.add_argument("--q-cutoff", type=float, default=0.5)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--lr", type=float, default=0.03)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    c, h, w = (int(v) for v in a.input.split("x"))
    dev = torch.device(a.device)
    torch.manual_seed(0)
    io = a.recipe == "iomatch"
    k = a.classes
    model = OsslNet(a.model, c, k, h, io, a.proj_dim).to(dev)
    ema_model = copy.deepcopy(model)
    shadow = {n: q.data.clone() for n, q in model.named_parameters()}
    decay, no_decay = [], []
    for n, q in model.named_parameters():
        (no_decay if ("bn" in n or "bias" in n or q.ndim == 1) else decay).append(q)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": a.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=a.lr, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    b, n = a.batch, a.mu * a.batch
    x_host = torch.randn(b + 2 * n, c, h, w)
    y_host = torch.randint(0, k, (b,))

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def step():
        x = x_host.to(dev, non_blocking=True)
        y = y_host.to(dev, non_blocking=True)
        out = model(x)
        logits_lb = out["logits"][:b]
        logits_w, logits_s = out["logits"][b:].chunk(2)
        sup = F.cross_entropy(logits_lb, y)
        with torch.no_grad():
            probs = F.softmax(logits_w, -1)
            maxp = probs.max(-1)[0]
            p_mask = (maxp >= a.p_cutoff).float()
        logs = {"sup": sup}
        if io:
            mb = mb_sup_loss(out["logits_mb"][:b], y)
            _, open_s = out["logits_open"][b:].chunk(2)
            mb_w, _ = out["logits_mb"][b:].chunk(2)
            with torch.no_grad():
                r = F.softmax(mb_w.view(n, 2, -1), 1)
                in_mask = (torch.sum(probs * r[:, 0, :], 1) < 0.5).float()
                q = torch.zeros((n, k + 1), device=dev)
                q[:, :k] = probs * r[:, 1, :]
                q[:, k] = torch.sum(probs * r[:, 0, :], 1)
                q_mask = (q.max(-1)[0] >= a.q_cutoff).float()
            ui = soft_ce(logits_s, probs, in_mask * p_mask)
            op = soft_ce(open_s, q, q_mask)
            loss = sup + mb + ui + op
            logs.update(mb=mb, ui=ui, op=op, in_mask=in_mask.mean(), p_mask=p_mask.mean(),
                        q_mask=q_mask.mean(), sel=(in_mask * p_mask).mean())
        else:
            pseudo = probs.argmax(-1)
            unsup = (F.cross_entropy(logits_s, pseudo, reduction="none") * p_mask).mean()
            loss = sup + unsup
            logs.update(unsup=unsup, mask=p_mask.mean())
        loss.backward()
        opt.step()
        sched.step()
        model.zero_grad()
        with torch.no_grad():
            for name, q in model.named_parameters():
                shadow[name] = ((1.0 - a.ema) * q.data + a.ema * shadow[name]).clone()
            ema_model.load_state_dict(model.state_dict())
            ema_model.load_state_dict(shadow, strict=False)
        logs["total"] = loss
        return {key: v.item() for key, v in logs.items()}

    model.train()
    for _ in range(a.warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(a.iters):
        step()
    sync()
    its = a.iters / (time.perf_counter() - t0)
    print(json.dumps({"engine": f"pytorch/{a.device}", "iterations_per_second": its,
                      "train_images_per_second": its * (b + 2 * n),
                      "views_iterations_per_second": None}))


if __name__ == "__main__":
    main()
