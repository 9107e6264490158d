"""Term revealing in hardware, in amaranth.sim: the weight-term ROM, the group-per-cycle
term-pair array, and TR layer engines (slot-serial and group-per-cycle PEs, alone and mixed
with other schemes) against the golden TR model at run-time controls.

Each control setting (conventional mode, several budgets ``k`` and data terms ``s``,
including ``k = 0``, ``k`` above every group's term count and ``s`` = every term) must give
the golden model's logits under the same :class:`~rtl_gen.design.golden.TRControl`, integer for
integer, and each layer's cycle counter must equal the cycle model for that control.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth import signed, unsigned

from rtl_gen.design import golden
from rtl_gen.design.golden import TRControl, TRMode
from rtl_gen.design.network import TRConfig
from rtl_gen.design.timing import tr_group_latency
from rtl_gen.hw.layer import ArrayConfig
from rtl_gen.hw.network import NetworkEngine
from rtl_gen.hw.tr import TRGroupArray, control_values, term_rom_words, tr_slots
from sim.streams import simulate
from tests.test_network_sim import run_network, small_net


def tr_net(sizes, schemes, tr, *, signed=False, seed=2):
    net, calib = small_net(sizes, schemes, seed=seed, signed_input=signed)
    layers = [dataclasses.replace(layer, tr=t) if t is not None else layer
              for layer, t in zip(net.layers, tr, strict=True)]
    return dataclasses.replace(net, layers=tuple(layers)), calib


CONTROLS = [None, TRControl(TRMode.CONVENTIONAL), TRControl(TRMode.TR, 1, 1),
            TRControl(TRMode.TR, 0, 2), TRControl(TRMode.TR, 50, None),
            TRControl(TRMode.TR, 2, 3)]


def check(net, calib, arrays, controls, n_img=3):
    x = net.input.quantize(calib[:n_img])
    engine = NetworkEngine(net, arrays)
    seen_slots = set()
    for control in controls:
        regs = control_values(control)
        logits, classes, cycles = run_network(engine, x, tr_regs=regs)
        want = golden.forward(net, x, control)
        assert logits.tolist() == want.tolist(), control
        assert classes.tolist() == golden.predict(net, x, control).tolist(), control
        model = [t.batch_cycles for t in engine.timings_for(control)]
        assert [c for i, c in cycles if i == len(net.layers) - 1][-1] == model[-1], control
        for i in range(len(net.layers)):
            assert [c for j, c in cycles if j == i][-1] == model[i], (control, i)
        seen_slots.add(tuple(t.slots for t in engine.timings_for(control)))
    return seen_slots


@pytest.mark.parametrize("addr", ["sum", "register"])
def test_tr_network_at_run_time_controls(addr):
    """Every control, with the weight-term ROM's address added from the counters' next
    values or kept as a register of its own (``tr_rom_addr``): the same logits and cycles."""
    net, calib = tr_net([20, 7, 3], ["signmag5", "signmag4"],
                        [TRConfig(4, 3, 2), TRConfig(8, 5, 2)])
    slots = check(net, calib, [ArrayConfig(cols=2, tr_rom_addr=addr),
                               ArrayConfig(cols=2, tr_rom_addr=addr)], CONTROLS)
    assert len(slots) >= 4  # the controls really change the schedule


def test_tr_mixed_with_other_schemes_signed_input_and_batch():
    net, calib = tr_net([11, 6, 4], ["int4", "signmag5"], [None, TRConfig(2, 2, 1)],
                        signed=True, seed=5)
    check(net, calib, [ArrayConfig(rows=2, cols=4), ArrayConfig(rows=2, cols=3)],
          [None, TRControl(TRMode.CONVENTIONAL), TRControl(TRMode.TR, 1, 2)], n_img=4)


def test_one_group_layer_reads_its_last_input():
    """K <= g: the batch's only group holds the last activation written, which must have
    landed before the array reads it (nonzero inputs make a stale read visible)."""
    net, calib = tr_net([4, 3], ["signmag5"], [TRConfig(4, 3, 2)], seed=7)
    check(net, calib + 1.0, [ArrayConfig(cols=2)], [None, TRControl(TRMode.CONVENTIONAL)],
          n_img=4)


def test_term_rom_holds_each_group_sorted():
    net, _ = tr_net([6, 3], ["signmag4"], [TRConfig(4, 3, None)], seed=1)
    layer = net.layers[0]
    words, t_max, layout = term_rom_words(layer, cols=2)
    w = layer.w_int
    width = layout.size
    # rebuild every weight from its group's stored terms (all slots: conventional)
    rebuilt = np.zeros_like(w)
    groups = -(-w.shape[1] // 4)
    tiles = -(-w.shape[0] // 2)
    for tile in range(tiles):
        for grp in range(groups):
            prev = None
            for slot in range(t_max):
                word = words[(tile * groups + grp) * t_max + slot]
                for c in range(2):
                    f = (word >> (c * width)) & ((1 << width) - 1)
                    exp = f & ((1 << layout["exp"].width) - 1)
                    neg = (f >> layout["neg"].offset) & 1
                    idx = (f >> layout["idx"].offset) & ((1 << layout["idx"].width) - 1)
                    if (f >> layout["nz"].offset) & 1:
                        n = tile * 2 + c
                        rebuilt[n, grp * 4 + idx] += (-1) ** neg * (1 << exp)
                        if c == 0:  # slots are sorted by exponent, then index
                            assert prev is None or (exp, -idx) < prev
                            prev = (exp, -idx)
    assert rebuilt.tolist() == w.tolist()
    assert tr_slots(layer, TRControl(TRMode.CONVENTIONAL)) == t_max


def test_refusals():
    with pytest.raises(ValueError, match="data_terms 0"):
        control_values(TRControl(TRMode.TR, 3, 0))
    net, _ = tr_net([6, 3], ["signmag4"], [TRConfig(3, 3, None)])
    with pytest.raises(ValueError, match="groups of 1, 2, 4"):
        NetworkEngine(net)
    net, _ = tr_net([6, 3], ["signmag4"], [TRConfig(4, 3, None)])
    with pytest.raises(ValueError, match="takes no lanes"):
        NetworkEngine(net, [ArrayConfig(lanes=2)])


def test_the_network_picks_the_engine_per_layer():
    """Term-revealing layers run on TRLayerEngine (with the controls), the others on the PE
    array engine; each engine refuses the other kind of layer by name."""
    from rtl_gen.hw.layer import LayerEngine
    from rtl_gen.hw.tr_layer import TRLayerEngine
    net, _ = tr_net([11, 6, 4], ["int4", "signmag5"], [None, TRConfig(2, 2, 1)])
    with pytest.raises(ValueError, match="'fc2': a term-revealing layer runs on the TR"):
        LayerEngine(net.layers[1], ArrayConfig())
    with pytest.raises(ValueError, match="has no term revealing"):
        TRLayerEngine(net.layers[0], ArrayConfig())
    stages = [cls.__name__ for _, cls, _ in NetworkEngine.plan(net).stages]
    assert stages == ["LayerEngine", "TRLayerEngine"]
    assert [cls.CONTROLS for _, cls, _ in NetworkEngine.plan(net).stages] == \
        [(), ("tr_mode", "tr_k", "tr_s")]


# -- the group-per-cycle PE -------------------------------------------------------------------


def run_group_array(layer, x, *, per, cols, settings):
    """Drive a :class:`TRGroupArray` over every tile of ``layer`` (its weight-term ROM, ``P``
    slots a word) for each ``(mode, k)`` of ``settings``, the words of each group its ``n``
    terms need and their lane counts as the layer engine gives them; returns, per setting,
    the accumulators ``(rows, out_features)`` and the cycles from each tile's last step to
    ``done``."""
    rows, k_in = x.shape
    g = layer.tr.group
    words, t_max, term = term_rom_words(layer, cols, per)
    per_group = -(-t_max // per)
    groups, tiles = -(-k_in // g), -(-layer.out_features // cols)
    a_bits = layer.in_bits + 1
    shape = signed(a_bits) if layer.in_signed else unsigned(a_bits)
    arr = TRGroupArray(rows=rows, cols=cols, group=g, per_cycle=per, x_shape=shape, term=term,
                       max_exp=layer.scheme.magnitude_bits, acc_bits=layer.acc_bits)
    xp = np.zeros((rows, groups * g), np.int64)
    xp[:, :k_in] = x
    packed = []
    for grp in range(groups):
        word = 0
        for r in range(rows):
            for i in range(g):
                word |= (int(xp[r, grp * g + i]) & ((1 << a_bits) - 1)) << ((r * g + i) * a_bits)
        packed.append(word)
    got, waits = [], []

    async def bench(ctx):
        for mode, k in settings:
            n = min(k, t_max) if mode else t_max
            n_words = max(1, -(-n // per))
            acc = np.zeros((rows, tiles * cols), np.int64)
            for tile in range(tiles):
                steps = [(grp, w) for grp in range(groups) for w in range(n_words)]
                for i, (grp, w) in enumerate(steps):
                    ctx.set(arr.x.as_value(), packed[grp])
                    ctx.set(arr.w.as_value(), words[(tile * groups + grp) * per_group + w])
                    ctx.set(arr.count, min(per, max(0, n - w * per)))
                    ctx.set(arr.valid, 1)
                    ctx.set(arr.first, i == 0)
                    ctx.set(arr.last, i == len(steps) - 1)
                    await ctx.tick()
                ctx.set(arr.valid, 0)
                wait = 0
                while not ctx.get(arr.done):
                    await ctx.tick()
                    wait += 1
                waits.append(wait)
                for r in range(rows):
                    for c in range(cols):
                        acc[r, tile * cols + c] = ctx.get(arr.res[r * cols + c])
            got.append(acc[:, :layer.out_features])

    simulate(arr, bench)
    return got, waits, t_max


@pytest.mark.parametrize("per, signed_in, g, seed", [(2, False, 8, 3), (5, True, 4, 4),
                                                     (16, False, 8, 5)])
def test_group_array_gives_tr_k_for_every_k(per, signed_in, g, seed):
    """Random weight groups and activations (two rows, three tiles' worth of outputs): for
    every ``k`` from 0 to above ``T`` and conventional mode, the array's sums are the golden
    model's TR(k) accumulators (bias aside), and ``done`` comes ``latency`` cycles after the
    last step."""
    net, calib = tr_net([19, 7], ["signmag5"], [TRConfig(g, 3, None)], signed=signed_in,
                        seed=seed)
    layer = net.layers[0]
    rng = np.random.default_rng(seed)
    lo, hi = (-(1 << (layer.in_bits - 1)), 1 << (layer.in_bits - 1)) if layer.in_signed \
        else (0, 1 << layer.in_bits)
    x = rng.integers(lo, hi, (2, layer.in_features))
    t_max = term_rom_words(layer, 3)[1]
    settings = [(0, 0)] + [(1, k) for k in range(t_max + 3)]
    got, waits, _ = run_group_array(layer, x, per=per, cols=3, settings=settings)
    for (mode, k), acc in zip(settings, got, strict=True):
        control = TRControl(TRMode.TR, k, None) if mode else TRControl(TRMode.CONVENTIONAL)
        want = golden.accumulate(layer, x, control) - layer.bias.astype(np.int64)
        assert acc.tolist() == want.tolist(), (mode, k)
    assert set(waits) == {tr_group_latency(per) - 1}  # done a latency after the last step
    assert len({tuple(a.ravel()) for a in got}) >= 4  # the budget really changes the sums


def test_group_rom_words_hold_p_slots_of_a_group():
    """``P`` slots a word, in slot order: the words of a group with ``P`` = 3 are the
    ``P`` = 1 words packed three a word (the last padded with absent terms)."""
    net, _ = tr_net([6, 3], ["signmag4"], [TRConfig(4, 3, None)], seed=1)
    layer = net.layers[0]
    one, t_max, layout = term_rom_words(layer, cols=2)
    three, t3, _ = term_rom_words(layer, cols=2, per_cycle=3)
    width, per_group = layout.size, -(-t_max // 3)
    assert t3 == t_max and len(three) == len(one) // t_max * per_group
    for base in range(len(one) // t_max):
        for slot in range(t_max):
            for c in range(2):
                f1 = (one[base * t_max + slot] >> (c * width)) & ((1 << width) - 1)
                word = three[base * per_group + slot // 3]
                f3 = (word >> ((c * 3 + slot % 3) * width)) & ((1 << width) - 1)
                assert f1 == f3
    assert tr_slots(layer, TRControl(TRMode.CONVENTIONAL), 3) == per_group


@pytest.mark.parametrize("terms, addr", [(2, "sum"), (3, "register"), (0, "sum")])
def test_group_engine_network_at_run_time_controls(terms, addr):
    """The network on the group-per-cycle PEs (``tr_terms`` P, 0: the budget): the same
    controls, logits and cycles as the model; each layer's step takes ``ceil(n / P)``
    cycles."""
    net, calib = tr_net([20, 7, 3], ["signmag5", "signmag4"],
                        [TRConfig(4, 3, 2), TRConfig(8, 5, 2)])
    arrays = [ArrayConfig(cols=2, tr_terms=terms, tr_rom_addr=addr)] * 2
    slots = check(net, calib, arrays, CONTROLS)
    assert len(slots) >= 2
    if terms == 0:  # one cycle a group at the bundle's own budget
        assert NetworkEngine.plan(net, arrays).timings[0].slots == 1


def test_group_engine_mixed_signed_input_and_batch():
    net, calib = tr_net([11, 6, 4], ["int4", "signmag5"], [None, TRConfig(2, 2, 1)],
                        signed=True, seed=5)
    check(net, calib, [ArrayConfig(rows=2, cols=4, tr_terms=3),
                       ArrayConfig(rows=2, cols=3, tr_terms=3)],
          [None, TRControl(TRMode.CONVENTIONAL), TRControl(TRMode.TR, 1, 2),
           TRControl(TRMode.TR, 0, 1)], n_img=4)


@pytest.mark.parametrize("terms", [1, 3])
def test_memory_read_network_at_run_time_controls(terms):
    """Each term lane reading its activation from its own copy of the input banks
    (``tr_read="memory"``): the same logits and cycles as the model under every control, on
    the slot-serial and the group-per-cycle PEs, with several tiles and groups."""
    net, calib = tr_net([20, 7, 3], ["signmag5", "signmag4"],
                        [TRConfig(4, 3, 2), TRConfig(8, 5, 2)])
    arrays = [ArrayConfig(cols=2, tr_terms=terms, tr_read="memory"),
              ArrayConfig(cols=2, tr_terms=terms, tr_read="memory")]
    assert len(check(net, calib, arrays, CONTROLS)) >= 2


def test_memory_read_mixed_signed_input_and_batch():
    """Two rows (a copy of the banks per row and lane), signed inputs, after an int4 layer,
    and a group of 2 (one index bit)."""
    net, calib = tr_net([11, 6, 4], ["int4", "signmag5"], [None, TRConfig(2, 2, 1)],
                        signed=True, seed=5)
    check(net, calib, [ArrayConfig(rows=2, cols=4),
                       ArrayConfig(rows=2, cols=3, tr_read="memory")],
          [None, TRControl(TRMode.CONVENTIONAL), TRControl(TRMode.TR, 1, 2)], n_img=4)


def test_memory_read_refusal():
    with pytest.raises(ValueError, match="reads its activation by one of select, memory, "
                                         "not 'mux'"):
        ArrayConfig(tr_read="mux")
    with pytest.raises(ValueError, match="address is one of sum, register, not 'add'"):
        ArrayConfig(tr_rom_addr="add")


def test_tr_terms_refusal():
    with pytest.raises(ValueError, match="tr_terms must be 0..64"):
        ArrayConfig(tr_terms=65)


def test_group_engine_through_the_host_registers():
    """The host link's TR_K, TR_S and TR_MODE registers drive the group-per-cycle PEs: three
    inferences in one design (the bundle's setting, (k, s) = (5, 3), conventional mode) give
    the golden model's logits under each."""
    import struct

    from rtl_gen import protocol as P
    from rtl_gen.hw.hostlink import HostLinkCore
    from tests.test_hostlink_sim import DIV, TIMEOUT, run_link

    net, calib = tr_net([8, 5, 3], ["signmag5", "int4"], [TRConfig(4, 2, 1), None], seed=4)
    arrays = [ArrayConfig(cols=2, tr_terms=2), ArrayConfig(cols=2)]
    core = HostLinkCore.for_divisor(net, arrays, divisor=DIV, timeout_cycles=TIMEOUT)
    x = net.input.quantize(calib[:1])
    infer = P.encode_request(P.CMD_INFER, bytes(int(v) for v in x.reshape(-1)))
    control = TRControl(TRMode.TR, 5, 3)
    _, k, s = control_values(control)
    frames = [infer,
              P.encode_request(P.CMD_WRITE, struct.pack("<BH", P.REGISTERS["TR_K"], k)),
              P.encode_request(P.CMD_WRITE, struct.pack("<BH", P.REGISTERS["TR_S"], s)),
              infer,
              P.encode_request(P.CMD_WRITE, struct.pack("<BH", P.REGISTERS["TR_MODE"], 0)),
              infer]
    replies = run_link(core, frames)
    assert [r[0] for r in replies] == [0] * len(frames)
    got = [P.parse_infer(core.info(), replies[i][2]).logits for i in (0, 3, 5)]
    want = [golden.forward(net, x, c) for c in (None, control,
                                               TRControl(TRMode.CONVENTIONAL))]
    assert [g.tolist() for g in got] == [w.tolist() for w in want]
    assert len({str(w.tolist()) for w in want}) == 3  # the three settings differ


def test_memory_read_only_on_term_revealing_layers():
    from rtl_gen.hw.layer import plan_layer
    net, _ = tr_net([8, 4], ["int4"], [None])
    with pytest.raises(ValueError, match="tr_read.*term-revealing layer's setting"):
        plan_layer(net.layers[0], ArrayConfig(cols=2, tr_read="memory"))
