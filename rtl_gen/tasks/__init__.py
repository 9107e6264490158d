"""What each command does, callable from Python and from tests; the CLI only parses options
and prints.

One module per command or group of commands: :mod:`.train`, :mod:`.quantize`, :mod:`.check`,
:mod:`.report` (also the demo's report pages), :mod:`.demo`, :mod:`.qat`, :mod:`.generate`,
:mod:`.verify`, :mod:`.synth`, :mod:`.build`, :mod:`.run`, :mod:`.mpwn` (``mpwn`` and
``reduced-float``); :mod:`.common` holds what they share.  Each task is a plain function
taking paths, networks and options, returning a result object; long ones report progress
through an optional callback (:mod:`.common`); bad input raises
:class:`~rtl_gen.errors.RtlGenError` with one line naming what is wrong.
"""
