"""Term revealing in hardware, in amaranth.sim: the weight-term ROM, and TR layer engines
(alone and mixed with other schemes) against the golden TR model at run-time controls.

Each control setting (conventional mode, several budgets ``k`` and data terms ``s``,
including ``k = 0``, ``k`` above every group's term count and ``s`` = every term) must give
the golden model's logits under the same :class:`~rtl_gen.design.golden.TRControl`, integer for
integer, and each layer's cycle counter must equal the cycle model for that control.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rtl_gen.design import golden
from rtl_gen.design.golden import TRControl, TRMode
from rtl_gen.design.network import TRConfig
from rtl_gen.hw.layer import ArrayConfig
from rtl_gen.hw.network import NetworkEngine
from rtl_gen.hw.tr import control_values, term_rom_words, tr_slots
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


def test_tr_network_at_run_time_controls():
    net, calib = tr_net([20, 7, 3], ["signmag5", "signmag4"],
                        [TRConfig(4, 3, 2), TRConfig(8, 5, 2)])
    slots = check(net, calib, [ArrayConfig(cols=2), ArrayConfig(cols=2)], CONTROLS)
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
