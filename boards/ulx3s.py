"""ULX3S (Radiona): ECP5 LFE5U-85F-6BG381, 25 MHz oscillator on G2.

* Clock: ``EHXPLLL`` from the 25 MHz oscillator; default target 100 MHz, and 50 MHz for a
  network with convolutions: the PLL setting below the int4 MNIST CNN's placed Fmax, 55.69
  MHz behind the host link, folded for the board (``rtl-gen build``'s default, seed 1).
* UART: the FTDI (``uart``: rx M1, tx L4); the FT231X takes 3 Mbaud, the build's default
  (33 cycles a bit at 100 MHz, 3.03 Mbaud; 17 at 50 MHz, 2.94 Mbaud).
* LEDs: ``leds[0..3]`` on LEDs D0-D3 (B2, C2, C1, D2), active-high.
* Reset: the PWR button (``button_pwr``, D6, active-low, inverted by amaranth-boards).
"""

from amaranth_boards.ulx3s import ULX3S_85F_Platform

from rtl_gen.flow.board import Board, Pin

__all__ = ["ULX3S"]

ULX3S = Board(
    name="ulx3s",
    device="ecp5-85f",
    platform_class=ULX3S_85F_Platform,
    osc_mhz=25.0,
    default_mhz=100.0,
    conv_mhz=50.0,
    uart=Pin("uart", 0),
    leds=tuple(Pin("led", i) for i in range(4)),
    reset_button=Pin("button_pwr", 0),
    nextpnr_args=("--speed", ULX3S_85F_Platform.speed),
    notes="UART on the FTDI (M1/L4); LEDs D0-D3; PWR button resets",
)
