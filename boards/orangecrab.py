"""OrangeCrab r0.2 (Good Stuff Department): ECP5 LFE5U-25F-8MG285, 48 MHz oscillator on A9.

* Clock: ``EHXPLLL`` from the 48 MHz oscillator; default target 100 MHz.
* UART: the board has no USB-serial chip (its USB goes straight to the FPGA), so the host
  link is on two pins of the Feather header, added here as resource ``uart`` 0: ``rx`` on
  header pin ``0`` (N17) and ``tx`` on header pin ``1`` (M18), the Feather RX/TX positions,
  3.3 V LVCMOS, ``rx`` pulled up.  Connect a 3.3 V USB-serial adapter: its TX to pin 0, its
  RX to pin 1, ground to GND.  The build's default rate is 3 Mbaud (33 cycles a bit at
  100 MHz), which the adapter must take (an FT232H or CP2102N does); otherwise build and
  run with ``--baud 115200``.
* LEDs: the RGB LED (active-low, inverted by amaranth-boards): ``leds[0]`` red, ``leds[1]``
  green, ``leds[2]`` blue; ``leds[3]`` has no LED.
* Reset: the user button (J17).  Held at power-up it still enters the DFU bootloader.
"""

from amaranth.build import Attrs
from amaranth_boards.orangecrab_r0_2 import OrangeCrabR0_2_25FPlatform
from amaranth_boards.resources import UARTResource

from rtl_gen.flow.board import Board, Pin

__all__ = ["FEATHER_UART", "ORANGECRAB"]

#: The host-link UART on Feather header pins 0 (rx) and 1 (tx).
FEATHER_UART = UARTResource(
    0, rx="0", tx="1", conn=("io", 0), attrs=Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP"))

ORANGECRAB = Board(
    name="orangecrab",
    device="ecp5-25f",
    platform_class=OrangeCrabR0_2_25FPlatform,
    osc_mhz=48.0,
    default_mhz=100.0,
    uart=Pin("uart", 0),
    leds=(Pin("rgb_led", 0, "r"), Pin("rgb_led", 0, "g"), Pin("rgb_led", 0, "b")),
    reset_button=Pin("button", 0),
    extra_resources=(FEATHER_UART,),
    nextpnr_args=("--speed", OrangeCrabR0_2_25FPlatform.speed),
    # As amaranth-boards packs it: compressed, configured at 38.8 MHz (what the bootloader
    # expects).
    pack_args=("--compress", "--freq", "38.8"),
    notes="UART on Feather header pins 0 (rx) / 1 (tx); LEDs RGB red, green, blue; "
          "button resets",
)
