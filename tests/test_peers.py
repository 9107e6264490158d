"""The peer's designs as ``benchmarks/peers.py`` builds them: da4ml's Verilog of a
term-revealing bundle (its lookup tables inlined as ROM modules) simulated under Icarus, bit
for bit against the golden model."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from benchmarks import peers
from rtl_gen.bundle import read_bundle
from rtl_gen.data.digits import digits
from rtl_gen.design import golden
from rtl_gen.training.defaults import WEIGHTS_DIR
from sim.runner import missing_simulator

pytest.importorskip("da4ml")


def _pack(values, widths) -> int:
    word, pos = 0, 0
    for v, w in zip(values, widths, strict=True):
        word |= (int(v) & ((1 << w) - 1)) << pos
        pos += w
    return word


def _unpack(word: int, kifs) -> list[int]:
    out, pos = [], 0
    for k, i, f in kifs:
        w = k + i + f
        u = (word >> pos) & ((1 << w) - 1) if w else 0
        pos += w
        if k and w and u >> (w - 1):
            u -= 1 << w
        assert f <= 0, "integer outputs"   # f < 0: a multiple of 2**-f, its zeros not sent
        out.append(u << -f)
    return out


def test_da4ml_term_revealing_verilog_is_bit_exact(tmp_path):
    """digits-tr at its own setting (revealed weights, the inputs and hidden codes truncated
    by da4ml lookups): the Verilog ``peers.verilog`` writes, tables and all, gives the golden
    model's logits on the test split and random codes, the pipeline's stages + 1 clocks
    after each input."""
    why = missing_simulator("icarus")
    if why:
        pytest.skip(why)
    from da4ml.codegen.rtl.rtl_model import get_io_kifs
    from da4ml.trace import to_pipeline

    net = read_bundle(WEIGHTS_DIR / "digits-tr")
    comb = peers.trace(net)
    assert len(comb.lookup_tables) == 2          # the 5-bit inputs' and the 8-bit codes'
    pipe = to_pipeline(comb, max(peers.DEFAULT_LATENCY_CUTOFFS), verbose=False)
    text = peers.verilog(pipe, "dut")
    assert "lookup_table" not in text and text.count("module da4ml_table_") == 2
    x = np.concatenate([digits()[1].x_int,
                        np.random.default_rng(1).integers(0, 32, size=(300, 64))])
    ref = golden.forward(net, x)
    # the same network with whole inputs differs on these vectors: the truncation is checked
    assert not np.array_equal(ref, golden.forward(net, x, golden.TRControl(
        mode=golden.TRMode.CONVENTIONAL)))
    ik, ok = get_io_kifs(pipe)
    iw = [int(w) for w in ik.sum(axis=0)]
    out_kifs = [tuple(int(c) for c in col) for col in ok.T]
    (tmp_path / "in.hex").write_text("".join(f"{_pack(row, iw):x}\n" for row in x))
    (tmp_path / "dut.v").write_text(text)
    n, lat = len(x), len(pipe.solutions)
    (tmp_path / "tb.v").write_text(f"""
module tb;
  reg clk = 0;
  reg [{sum(iw) - 1}:0] inp;
  wire [{sum(sum(k) for k in out_kifs) - 1}:0] out;
  reg [{sum(iw) - 1}:0] mem [0:{n - 1}];
  integer i, fo;
  dut d(.clk(clk), .model_inp(inp), .model_out(out));
  initial begin
    $readmemh("in.hex", mem);
    fo = $fopen("out.hex");
    for (i = 0; i < {n + lat}; i = i + 1) begin
      inp = mem[i < {n} ? i : 0];
      #1 clk = 1; #1 clk = 0;
      $fdisplay(fo, "%h", out);
    end
    $fclose(fo);
    $finish;
  end
endmodule
""")
    subprocess.run(["iverilog", "-g2012", "-o", "sim", "tb.v", "dut.v"], cwd=tmp_path,
                   check=True)
    subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, check=True, stdout=subprocess.DEVNULL)
    words = (tmp_path / "out.hex").read_text().split()
    got = np.array([_unpack(int(w, 16), out_kifs) for w in words[lat:lat + n]])
    assert got.shape == ref.shape and np.array_equal(got, ref)


def test_table_module_leaves_unreached_addresses_undefined():
    text = peers.table_module("t", ["0A", "XX", "1F"])
    assert "0: out = 'h0A;" in text and "2: out = 'h1F;" in text and "1: out" not in text
    assert "default: out = {BW_OUT{1'bx}};" in text
