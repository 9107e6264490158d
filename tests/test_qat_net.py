"""A user's PyTorch CNN that no code was written for: traced, quantized (PTQ) and trained (QAT)
into a bundle whose golden model classifies as the PyTorch model does and whose Verilog is
bit-exact under Verilator; an unsupported layer is one line naming it and its position."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn import functional  # noqa: E402

from rtl_gen.bundle import read_bundle, write_bundle  # noqa: E402
from rtl_gen.data.digits import DIGITS_INPUT_BITS, DIGITS_INPUT_SCALE, digits  # noqa: E402
from rtl_gen.design.network import InputSpec  # noqa: E402
from rtl_gen.errors import ModelError  # noqa: E402
from rtl_gen.training.qat import deterministic, train_qat  # noqa: E402
from rtl_gen.training.qat_net import QATNet, quantize_torch, read_torch  # noqa: E402

SPEC = InputSpec(64, DIGITS_INPUT_BITS, False, DIGITS_INPUT_SCALE)


class UserNet(nn.Module):
    """Written as a user would: a flat input reshaped, batch norm, functional ReLU and
    pooling, a stride-2 convolution, a Sequential head with a flatten and a dropout."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.c2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(32, 16), nn.ReLU(),
                                  nn.Linear(16, 10))

    def forward(self, x):
        x = x.view(-1, 1, 8, 8)
        x = functional.max_pool2d(functional.relu(self.bn1(self.c1(x))), 2)  # 8x8 -> 4x4
        x = torch.relu(self.c2(x))  # 4x4 -> 2x2
        return self.head(x)


def odd_net():
    """Odd maps, valid padding, average pooling with stride, global average pooling."""
    return nn.Sequential(nn.Conv2d(1, 4, 2), nn.ReLU(),            # 8x8 -> 7x7
                         nn.AvgPool2d(3, stride=2),                # 7x7 -> 3x3
                         nn.Conv2d(4, 8, 3, padding="same"), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def _train_float(model, x, y, epochs=25):
    xt = torch.as_tensor(x, dtype=torch.float64).reshape(-1, 1, 8, 8)
    yt = torch.as_tensor(y)
    with deterministic(0) as gen:
        model.double()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(xt), generator=gen)
            for i in range(0, len(xt), 64):
                idx = order[i:i + 64]
                loss = functional.cross_entropy(model(xt[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            return model


def _float_accuracy(model, x, y) -> float:
    with torch.no_grad():
        logits = model(torch.as_tensor(x, dtype=torch.float64).reshape(-1, 1, 8, 8))
    return float((logits.argmax(1).numpy() == y).mean())


@pytest.fixture(scope="module")
def data():
    return digits()


@pytest.fixture(scope="module")
def user_net(data):
    train, _ = data
    with deterministic(0):
        model = UserNet()
    return _train_float(model, train.x, train.y)


def _agreement(qat: QATNet, net, x) -> float:
    """Share of images whose golden logits (integer accumulators) are the quantized PyTorch
    model's logits over one scale, to float rounding (a wrong layout or rounding rule moves
    most of them; the requantizer's multiplier and shift may move a rare one)."""
    with torch.no_grad():
        t = qat(x).numpy()
    g = net.forward(qat.input_codes(x)).astype(np.float64)
    c = float((t * g).sum() / (g * g).sum())
    same = np.all(np.abs(t - c * g) <= 1e-9 * np.abs(t).max(), axis=1)
    return float(same.mean())


def test_the_traced_layers_of_a_users_model():
    with deterministic(0):
        layers = read_torch(UserNet(), (64,))
    assert [(x.kind, x.in_shape, x.out_shape) for x in layers] == [
        ("conv", (1, 8, 8), (6, 8, 8)), ("maxpool", (6, 8, 8), (6, 4, 4)),
        ("conv", (6, 4, 4), (8, 2, 2)), ("flatten", (8, 2, 2), (32,)),
        ("dense", (32,), (16,)), ("dense", (16,), (10,))]
    assert [x.relu for x in layers if x.weight is not None] == [True, True, True, False]
    assert layers[2].stride == (2, 2) and layers[2].padding == (1, 1)
    assert layers[4].chw_columns == (8, 2, 2)  # reordered to HWC at export


def test_batch_norm_is_folded_exactly():
    with deterministic(1):
        conv, bn = nn.Conv2d(1, 3, 3).double(), nn.BatchNorm2d(3).double()
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    model = nn.Sequential(conv, bn, nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 2)).eval()
    layers = read_torch(model, (1, 8, 8))
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    folded = functional.conv2d(x, torch.as_tensor(layers[0].weight),
                               torch.as_tensor(layers[0].bias))
    with torch.no_grad():
        np.testing.assert_allclose(folded.numpy(), bn(conv(x)).numpy(), rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize("scheme", ["int4", "ternary", "pot4"])
def test_ptq_of_a_users_cnn_classifies_as_the_quantized_model(user_net, data, scheme):
    train, test = data
    net = quantize_torch(user_net, train.x[:512], scheme, input_spec=SPEC, in_shape=(1, 8, 8),
                         name=f"user-{scheme}")
    assert [layer.kind for layer in net.layers] == ["conv", "maxpool", "conv", "flatten",
                                                    "dense", "dense"]
    qat = QATNet(user_net, scheme, input_spec=SPEC, in_shape=(1, 8, 8))
    qat.calibrate(train.x[:512])
    assert _agreement(qat, net, test.x) >= 0.97
    if scheme == "int4":  # 4-bit weights and activations keep the float model's accuracy
        assert net.accuracy(test.x_int, test.y) >= _float_accuracy(user_net, test.x,
                                                                   test.y) - 0.05


def test_qat_of_a_users_cnn_in_mixed_precision(user_net, data):
    train, test = data
    qat = QATNet(user_net, ["ternary", "int4", "binary", "int8"], input_spec=SPEC,
                 in_shape=(1, 8, 8), act_bits=3)
    qat.calibrate(train.x[:512])
    before = qat.export(name="before").accuracy(test.x_int, test.y)
    train_qat(qat, train.x, train.y, epochs=4, lr=2e-3)
    net = qat.export(name="user-mixed", labels=[f"d{i}" for i in range(10)])
    assert net.metadata["schemes"] == ["ternary", "int4", "binary", "int8"]
    assert net.labels[3] == "d3"
    assert net.accuracy(test.x_int, test.y) > max(before, 0.75)
    assert _agreement(qat, net, test.x) >= 0.97


def test_odd_shapes_and_average_pooling(data):
    train, test = data
    with deterministic(2):
        model = odd_net()
    model = _train_float(model, train.x, train.y, epochs=15)
    qat = QATNet(model, "int4", input_spec=SPEC, in_shape=(1, 8, 8))
    qat.calibrate(train.x[:512])
    net = qat.export(name="odd")
    assert [layer.kind for layer in net.layers] == ["conv", "avgpool", "conv",
                                                    "global_avgpool", "dense"]
    assert net.layers[0].out_shape == (7, 7, 4) and net.layers[1].out_shape == (3, 3, 4)
    assert _agreement(qat, net, test.x) >= 0.97


@pytest.mark.slow
def test_a_users_cnn_generates_and_verifies_bit_exact(user_net, data, tmp_path):
    """The bundle written from a user's CNN runs through its Verilog under Verilator: every
    logit and class equal to the golden model's, every weight layer's cycles the model's."""
    from test_conv_hw_cocotb import check_cycles, need_verilator

    from sim.verify import verify_network

    need_verilator()
    train, test = data
    net = quantize_torch(user_net, train.x[:512], "int4", input_spec=SPEC, in_shape=(1, 8, 8),
                         name="user-cnn")
    net = read_bundle(write_bundle(net, tmp_path / "user-cnn"))
    result = verify_network(net, test.x_int[:60])
    assert result["images"] == 60
    assert result["classes"] == [int(c) for c in net.predict(test.x_int[:60])]
    check_cycles(result)


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(1, 1, 3, padding=1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.c(x) + x).flatten(1))


@pytest.mark.parametrize("model, message, tail", [
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Sigmoid(),
                   nn.Linear(144, 10)),
     "layer 4 of 5 (", ": Sigmoid): is not supported; rtl_gen takes Conv2d, Linear"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 10)),
     "layer 2 of 3 (", ": Flatten): the layer before ("),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3, groups=2), nn.ReLU(),
                   nn.Flatten(), nn.Linear(32, 10)),
     "layer 3 of 6 (", ": Conv2d): groups 2 and dilation"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Linear(36, 10)),
     "layer 3 of 3 (", ": Linear): takes a flat vector: flatten the 6x6x2 map before it"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2, padding=1), nn.Flatten(),
                   nn.Linear(32, 10)),
     "layer 3 of 5 (", ": MaxPool2d): pooling with padding"),
    (nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.ReLU()),
     "must end with a Conv2d or Linear without ReLU", ""),
    (_Residual(), "layer 2 of 5 (add: add): takes 2 tensors or not the layer before", ""),
])
def test_an_unsupported_layer_is_one_line_with_its_position(model, message, tail):
    with pytest.raises(ModelError) as e:
        QATNet(model, "int4", input_spec=SPEC, in_shape=(1, 8, 8))
    text = str(e.value)
    assert "\n" not in text and message in text and tail in text, text
