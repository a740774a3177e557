#!/usr/bin/python3
"""Reference counts of dnnplan's built-in networks, computed with PyTorch.

Builds every built-in network of networks/*.json in PyTorch (torchvision's own models where they
exist, small module definitions below otherwise), runs one forward pass of batch 1 (on the meta
device by default, so even the 1024x1024 U-Net costs nothing) and records, per network:

- `params`: the number of trainable parameters (sum of p.numel(), a tied weight counted once);
- `output_shape`: the per-sample shape of the network's output;
- `layers`: every convolution, transposed convolution, linear layer and (GPT-2) multi-head
  attention block in execution order (which is also module order for these networks), with its
  per-sample output shape, the parameters it owns (a tied weight belongs to the first module that
  registers it) and its multiply-accumulates per sample, measured by forward hooks from the
  tensors actually produced:
    conv2d            MACs = Cout*Hout*Wout * (Cin/groups)*kh*kw
    conv_transpose2d  MACs = Cin*Hin*Win * (Cout/groups)*kh*kw   (every input element meets the
                      whole kernel once; equals Cout*Hout*Wout*Cin*kh*kw/(sh*sw) when the stride
                      tiles the output)
    linear            MACs = in_features*out_features*rows
    attention         MACs = the Q/K/V and output projections (4*S*H^2) + Q.K^T (S^2*H)
                      + probabilities.V (S^2*H), measured on the actual tensors.
  `bias` says whether the layer adds a bias (dnnplan counts one FLOP per output element for it,
  four per token-feature for attention's four projections).

GPT-3 175B is not instantiated: its parameter count comes from the closed formula
96*(12h^2+13h) + V*h + S*h + 2h.

Usage: /usr/bin/python3 tools/torch_reference.py > tests/data/torch_reference.json
       /usr/bin/python3 tools/torch_reference.py --out tests/data/torch_reference.json [--device cpu]
"""

import argparse
import json
import math
import re
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


# ---------------------------------------------------------------------------------------------
# Networks that torchvision does not provide.


class LeNet5(nn.Sequential):
    """networks/lenet5.json: LeNet-5 with ReLU and max pooling, 1x32x32 input."""

    def __init__(self):
        super().__init__(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10))


class SmallCnn(nn.Sequential):
    """networks/smallcnn.json: a small VGG-like CNN, 3x32x32 input, 10 classes."""

    def __init__(self):
        super().__init__(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 8 * 8, 128), nn.ReLU(),
            nn.Linear(128, 10))


class PreActBottleneck(nn.Module):
    """One bottleneck unit of Keras' cifar10_resnet.py resnet_v2 (He et al. 2016, v2):
    [BN, ReLU,] conv1x1(stride) -> BN, ReLU, conv3x3 -> BN, ReLU, conv1x1, plus the shortcut
    (a 1x1 conv with the block's stride on the un-normalised input for the first unit of a stage,
    the identity otherwise). Keras' Conv2D has a bias by default, so every conv here has one."""

    def __init__(self, cin, inner, cout, stride, first_of_stage, preact):
        super().__init__()
        self.preact = preact
        self.bn1 = nn.BatchNorm2d(cin) if preact else None
        self.conv1 = nn.Conv2d(cin, inner, 1, stride=stride)
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, inner, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(inner)
        self.conv3 = nn.Conv2d(inner, cout, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride) if first_of_stage else None

    def forward(self, x):
        y = F.relu(self.bn1(x)) if self.preact else x
        y = self.conv1(y)
        y = self.conv2(F.relu(self.bn2(y)))
        y = self.conv3(F.relu(self.bn3(y)))
        s = self.shortcut(x) if self.shortcut is not None else x
        return s + y


class ResNetV2Keras(nn.Module):
    """networks/resnet1001.json: Keras cifar10_resnet resnet_v2 of depth 9n+2 (n=111 for
    ResNet-1001, as in HyPar-Flow) at 224x224 with 1000 classes; the Keras
    AveragePooling2D(pool_size=8) is kept (56x56 -> 7x7), then flatten, dense, softmax."""

    def __init__(self, n=111, num_classes=1000, image=224):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.stem_bn = nn.BatchNorm2d(16)
        blocks = []
        cin = 16
        for stage, (inner, cout) in enumerate([(16, 64), (64, 128), (128, 256)]):
            for b in range(n):
                stride = 2 if (stage > 0 and b == 0) else 1
                blocks.append(PreActBottleneck(cin, inner, cout, stride, first_of_stage=(b == 0),
                                               preact=not (stage == 0 and b == 0)))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(256)
        self.pool = nn.AvgPool2d(8)
        side = (image // 4) // 8
        self.fc = nn.Linear(256 * side * side, num_classes)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        x = self.blocks(x)
        x = self.pool(F.relu(self.bn(x)))
        return F.softmax(self.fc(torch.flatten(x, 1)), dim=-1)


class DoubleConv(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class Up(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x, skip):
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """networks/unet.json: U-Net (Ronneberger et al. 2015) as in common PyTorch implementations
    (padded 3x3 convs without bias + BN + ReLU, max pooling, 2x2 stride-2 transposed convs,
    skip first in the concatenation), 3 input channels, 2 classes."""

    def __init__(self, cin=3, classes=2):
        super().__init__()
        self.inc = DoubleConv(cin, 64)
        self.down = nn.ModuleList([DoubleConv(64, 128), DoubleConv(128, 256),
                                   DoubleConv(256, 512), DoubleConv(512, 1024)])
        self.ups = nn.ModuleList([Up(1024, 512), Up(512, 256), Up(256, 128), Up(128, 64)])
        self.outc = nn.Conv2d(64, classes, 1)

    def forward(self, x):
        skips = [self.inc(x)]
        for d in self.down:
            skips.append(d(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for u in self.ups:
            x = u(x, skips.pop())
        return self.outc(x)


class CausalSelfAttention(nn.Module):
    """GPT-2 attention: fused QKV projection, causal softmax(QK^T/sqrt(d))V, output projection.
    Counts its own matmul MACs from the tensors it actually multiplies."""

    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(hidden, 3 * hidden)
        self.c_proj = nn.Linear(hidden, hidden)
        self.macs = 0

    def forward(self, x):
        b, s, h = x.shape
        d = h // self.heads
        q, k, v = self.c_attn(x).split(h, dim=2)
        q, k, v = (t.view(b, s, self.heads, d).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)
        mask = torch.ones(s, s, dtype=torch.bool, device=x.device).tril()
        probs = F.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        ctx = probs @ v
        out = self.c_proj(ctx.transpose(1, 2).reshape(b, s, h))
        self.macs = (b * s * h * 3 * h                         # QKV projection
                     + q.shape[0] * q.shape[1] * s * s * d     # Q.K^T
                     + probs.shape[0] * probs.shape[1] * s * s * d  # probabilities.V
                     + b * s * h * h)                          # output projection
        return out


class GptBlock(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden)
        self.attn = CausalSelfAttention(hidden, heads)
        self.ln_2 = nn.LayerNorm(hidden)
        self.fc = nn.Linear(hidden, 4 * hidden)
        self.proj = nn.Linear(4 * hidden, hidden)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.proj(F.gelu(self.fc(self.ln_2(x))))


class Gpt2(nn.Module):
    """networks/gpt2.json: GPT-2 124M (pre-LN blocks, tied lm_head without bias, no dropout)."""

    def __init__(self, vocab=50257, positions=1024, layers=12, hidden=768, heads=12):
        super().__init__()
        self.wte = nn.Embedding(vocab, hidden)
        self.wpe = nn.Embedding(positions, hidden)
        self.blocks = nn.Sequential(*[GptBlock(hidden, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        return self.lm_head(self.ln_f(self.blocks(x)))


# ---------------------------------------------------------------------------------------------
# Measurement.

HOOKED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, CausalSelfAttention)
KIND = {nn.Conv2d: "conv2d", nn.ConvTranspose2d: "conv_transpose2d", nn.Linear: "linear",
        CausalSelfAttention: "attention"}


def unique_param_count(model):
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def owned_params(model):
    """module name -> number of parameters it owns (a shared tensor goes to its first owner)."""
    seen, owned = set(), {}
    for name, module in model.named_modules():
        n = 0
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                n += p.numel()
        owned[name] = n
    return owned


def measure(model, example, device):
    model.eval()
    params = unique_param_count(model)
    owned = owned_params(model)
    names = {module: name for name, module in model.named_modules()}
    batch = example.shape[0]
    layers = []

    def inside_attention(name):
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        return any(isinstance(m, CausalSelfAttention) and names[m] == parent for m in names)

    def hook(module, inputs, output):
        name = names[module]
        kind = KIND[type(module)]
        if kind == "conv2d":
            per_out = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            macs = output.numel() * per_out
        elif kind == "conv_transpose2d":
            per_in = module.out_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            macs = inputs[0].numel() * per_in
        elif kind == "linear":
            macs = output.numel() * module.in_features
        else:
            macs = module.macs
        if kind == "attention":
            own = sum(owned[n] for n in owned if n == name or n.startswith(name + "."))
            bias = module.c_attn.bias is not None
        else:
            own = owned[name]
            bias = module.bias is not None
        assert macs % batch == 0
        layers.append({"name": name, "kind": kind, "output_shape": list(output.shape[1:]),
                       "params": own, "macs": macs // batch, "bias": bias})

    handles = []
    for name, module in model.named_modules():
        if isinstance(module, HOOKED) and not inside_attention(name):
            handles.append(module.register_forward_hook(hook))
    model = model.to(device)
    with torch.no_grad():
        out = model(example.to(device))
    for h in handles:
        h.remove()
    assert sum(l["params"] for l in layers) <= params
    return {"params": params, "output_shape": list(out.shape[1:]), "layers": layers}


def gpt3_175b():
    h, heads, blocks, seq, vocab = 12288, 96, 96, 2048, 50257
    params = blocks * (12 * h * h + 13 * h) + vocab * h + seq * h + 2 * h
    return {"params": params,
            "params_formula": "96*(12h^2+13h) + V*h + S*h + 2h, h=12288, V=50257, S=2048 "
                              "(per block: attention 4h^2+4h, MLP 8h^2+5h, two layer norms 4h; "
                              "token and position embeddings; final layer norm; tied lm_head)",
            "output_shape": [seq, vocab], "layers": []}


def gpt_1t():
    # Narayanan et al. 2021 (SC'21), Table 1, the 1008B row; vocabulary padded to 51200 as in Megatron-LM.
    h, heads, blocks, seq, vocab = 25600, 160, 128, 2048, 51200
    params = blocks * (12 * h * h + 13 * h) + vocab * h + seq * h + 2 * h
    return {"params": params,
            "params_formula": "128*(12h^2+13h) + V*h + S*h + 2h, h=25600, V=51200, S=2048 "
                              "(per block: attention 4h^2+4h, MLP 8h^2+5h, two layer norms 4h; "
                              "token and position embeddings; final layer norm; tied lm_head)",
            "output_shape": [seq, vocab], "layers": []}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="write here instead of standard output")
    parser.add_argument("--device", default="meta",
                        help="meta (default: shapes only, instant) or cpu (really computes)")
    args = parser.parse_args()
    torch.manual_seed(0)

    image = lambda c, s: torch.zeros(1, c, s, s)
    tv = torchvision.models
    builders = [
        ("lenet5", LeNet5, image(1, 32)),
        ("smallcnn", SmallCnn, image(3, 32)),
        ("alexnet", lambda: tv.alexnet(weights=None), image(3, 224)),
        ("vgg16", lambda: tv.vgg16(weights=None), image(3, 224)),
        ("resnet50", lambda: tv.resnet50(weights=None), image(3, 224)),
        ("resnet152", lambda: tv.resnet152(weights=None), image(3, 224)),
        ("googlenet", lambda: tv.googlenet(weights=None, aux_logits=False, init_weights=False), image(3, 224)),
        ("resnet1001", ResNetV2Keras, image(3, 224)),
        ("unet", UNet, image(3, 1024)),
        ("gpt2", Gpt2, torch.zeros(1, 1024, dtype=torch.long)),
    ]
    networks = {}
    for name, build, example in builders:
        print(f"measuring {name}", file=sys.stderr)
        networks[name] = measure(build(), example, args.device)
    networks["gpt3-175b"] = gpt3_175b()
    networks["gpt-1t"] = gpt_1t()

    doc = {
        "generator": "tools/torch_reference.py",
        "command": "/usr/bin/python3 tools/torch_reference.py > tests/data/torch_reference.json",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": args.device,
        "conventions": "per sample (forward of batch 1); params: trainable, tied counted once; "
                       "layers: conv2d, conv_transpose2d, linear and attention in execution order "
                       "with per-sample multiply-accumulates (see the script's docstring)",
        "networks": networks,
    }
    text = json.dumps(doc, indent=1) + "\n"
    # Keep the file short: one layer per line.
    text = re.sub(r"\[\n\s+(-?\d+(?:,\n\s+-?\d+)*)\n\s+\]",
                  lambda m: "[" + re.sub(r",\n\s+", ", ", m.group(1)) + "]", text)
    text = re.sub(r"\{\n\s+\"name\"([^{}]*?)\n\s+\}",
                  lambda m: "{\"name\"" + re.sub(r"\s*\n\s*", " ", m.group(1)) + "}", text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
