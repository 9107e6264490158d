"""``rtl-gen --help`` explains itself: every option of every command has help text, the
commands list in pipeline order with their whole summaries, and ``generate`` maps its array
options to the names FINN and hls4ml users know."""

import re

import click
import numpy as np
import pytest
from click.testing import CliRunner

from rtl_gen import cli
from rtl_gen.cli import main


def commands():
    ctx = click.Context(main)
    return [(name, main.get_command(ctx, name)) for name in main.list_commands(ctx)]


def params():
    """(command name, parameter) of the group and of every command."""
    out = [("rtl-gen", p) for p in main.get_params(click.Context(main))]
    for name, command in commands():
        out += [(name, p) for p in command.get_params(click.Context(command))]
    return out


def helps(*args, width=80):
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=width)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_option_of_every_command_has_help():
    missing = [f"{name} {p.opts[0]}" for name, p in params()
               if isinstance(p, click.Option) and not (p.help or "").strip()]
    assert not missing, f"options without help: {missing}"


def test_no_option_refers_elsewhere_for_its_help():
    """Each option explains itself where it is listed ("As for generate." does not)."""
    vague = [f"{name} {p.opts[0]}" for name, p in params()
             if isinstance(p, click.Option) and p.help and p.help.startswith("As for")]
    assert not vague


def test_every_argument_is_named_in_its_command_help():
    for name, command in commands():
        for p in command.params:
            if isinstance(p, click.Argument):
                assert p.human_readable_name in (command.help or ""), (name, p.name)


def test_the_walk_sees_every_command_and_option():
    """The walk above covers what a user sees: every command, and options such as those
    the issue named."""
    names = dict(commands())
    assert {"demo", "train", "quantize", "check", "generate", "verify", "synth", "build",
            "run", "report"} <= set(names)
    assert "--simulator" in [p.opts[0] for p in names["verify"].params]
    assert "--pipeline" in [p.opts[0] for p in names["generate"].params]
    assert sum(isinstance(p, click.Option) for _, p in params()) > 100


def listed(text: str) -> list[str]:
    """The command names of a group help page, in the order printed."""
    body = text.split("Show this message and exit.", 1)[1]
    return [m.group(1) for m in re.finditer(r"^  ([a-z][\w-]*)  ", body, re.M)]


def test_commands_list_in_pipeline_order():
    order = [name for name, _ in commands()]
    assert listed(helps()) == order
    # the pipeline: a model becomes a bundle, a bundle becomes hardware, then the results
    steps = ["train", "quantize", "check", "generate", "verify", "synth", "build", "run",
             "report"]
    assert [order.index(s) for s in steps] == sorted(order.index(s) for s in steps)
    assert order[0] == "demo"  # the whole pipeline in one command comes first
    assert order != sorted(order)


def test_unknown_commands_list_last_and_known_ones_in_place():
    """A command added without a place in the order is still listed (last, sorted); one
    the order names (``import``) lands in its step."""
    group = type(main)(name="rtl-gen")
    for name in ("zeta", "report", "alpha", "import", "generate", "train"):
        group.add_command(click.Command(name, help=f"The {name} command."))
    ctx = click.Context(group)
    assert group.list_commands(ctx) == ["train", "import", "generate", "report", "alpha",
                                        "zeta"]
    text = CliRunner().invoke(group, ["--help"]).output
    assert listed(text) == ["train", "import", "generate", "report", "alpha", "zeta"]
    assert f"{cli.OTHER_COMMANDS}:" in text


@pytest.mark.parametrize("width", [60, 80, 200])
def test_summaries_are_whole_sentences(width):
    text = " ".join(helps(width=width).split("Show this message and exit.", 1)[1].split())
    for name, command in commands():
        summary = " ".join(command.help.split("\n\n", 1)[0].split())
        assert summary.endswith("."), name
        assert f"{name} {summary}" in text, name
    assert "..." not in text  # click's mark of a summary cut short


def test_generate_maps_the_array_to_finn_and_hls4ml():
    text = " ".join(helps("generate").split())
    for words in ("rows R the batch", "cols C", "FINN: PE", "FINN: SIMD", "hls4ml",
                  "reuse factor"):
        assert words in text, words


def test_array_options_say_what_they_cost():
    for command in ("generate", "verify", "synth", "build"):
        text = helps(command).split("\nOptions:\n", 1)[1]
        for option, words in (("--cols", ("more LC", "fewer cycles", "idle PEs")),
                              ("--rows", ("LC",)), ("--array-lanes", ("more LC",))):
            entry = " ".join(text.split(f"\n  {option} ", 1)[1].split("\n  -", 1)[0].split())
            for w in words:
                assert w in entry, (command, option, w)


def test_data_is_required_for_a_model_not_made_from_the_digits(tmp_path):
    rng = np.random.default_rng(0)
    model = tmp_path / "m.npz"
    np.savez(model, weight0=rng.normal(0, 0.3, (8, 6)), bias0=rng.normal(0, 0.1, 8),
             weight1=rng.normal(0, 0.3, (3, 8)), bias1=rng.normal(0, 0.1, 3),
             calibration=rng.normal(0, 1, (40, 6)))
    runner = CliRunner()
    made = runner.invoke(main, ["quantize", "--model", str(model), "--scheme", "int8",
                                "--out", str(tmp_path / "b")])
    assert made.exit_code == 0, made.output
    result = runner.invoke(main, ["report", "--bundle", str(tmp_path / "b")])
    assert result.exit_code == 1
    assert result.stderr == ("Error: bundle 'b' is not a digits or MNIST model: give --data "
                             "with arrays x (float inputs) and y (labels)\n")
    assert "Required unless" in " ".join(helps("report").split())
