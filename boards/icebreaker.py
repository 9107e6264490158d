"""iCEBreaker (1BitSquared): iCE40UP5K-SG48, 12 MHz oscillator on pin 35.

* Clock: the 12 MHz oscillator pin (35, IOT_46b_G0) is the UP5K's PLL pad, so the PLL is an
  ``SB_PLL40_PAD`` fed straight from it; the default target is 30 MHz, and 24 MHz for a
  network with convolutions: the PLL setting below the int4 MNIST CNN's placed Fmax, 25.45
  MHz behind the host link, folded for the board (``rtl-gen build``'s default, seed 1).
* UART: the FTDI's second channel, ``uart`` (rx pin 6, tx pin 9); the FT2232H takes 3 Mbaud,
  the build's default (10 cycles a bit at 30 MHz, 8 at 24 MHz).
* LEDs: ``leds[0]`` the red LED (pin 11), ``leds[1]`` the green LED (pin 37), both active-low
  (amaranth-boards inverts them); ``leds[2]``/``leds[3]`` LEDs 2 and 3 of the break-off PMOD
  (PMOD2, as shipped; with it broken off those two pins just toggle).
* Reset: the user button (pin 10, active-low, inverted by amaranth-boards).
"""

from amaranth_boards.icebreaker import ICEBreakerPlatform

from rtl_gen.flow.board import Board, Pin

__all__ = ["ICEBREAKER"]

ICEBREAKER = Board(
    name="icebreaker",
    device="up5k",
    platform_class=ICEBreakerPlatform,
    osc_mhz=12.0,
    default_mhz=30.0,
    conv_mhz=24.0,
    uart=Pin("uart", 0),
    leds=(Pin("led", 0), Pin("led", 1), Pin("led", 2), Pin("led", 3)),
    reset_button=Pin("button", 0),
    extra_resources=tuple(
        r for r in ICEBreakerPlatform.break_off_pmod if r.name == "led" and r.number in (2, 3)),
    pll_pad=True,
    notes="UART on the FTDI (pins 6/9); LEDs red, green, PMOD2 LED2, LED3; button resets",
)
