"""Every ``nmodal`` help page ends with examples, and every example parses with the real parser."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator

import pytest

from nmodal.cli import COMMAND_MODULES, build_parser, main
from nmodal.cli._help import example_lines


def all_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every sub-command parser below it, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
                yield from all_parsers(child)


PARSERS = {p.prog: p for p in all_parsers(build_parser())}


def test_every_command_is_covered():
    top = {prog.split()[1] for prog in PARSERS if prog != "nmodal"}
    assert top == set(COMMAND_MODULES)
    # nested actions too
    assert {"nmodal ingest manifest", "nmodal index build", "nmodal index add"} <= set(PARSERS)


@pytest.mark.parametrize("prog", sorted(PARSERS))
def test_help_ends_with_examples_that_parse(prog: str):
    help_text = PARSERS[prog].format_help()
    examples = example_lines(help_text)
    assert examples, f"`{prog} --help` shows no example"
    assert help_text.rstrip().splitlines()[-1].strip() == examples[-1]  # the examples end it
    # the first example runs this command (later ones may show the next step)
    assert shlex.split(examples[0])[: len(prog.split())] == prog.split(), examples[0]
    for line in examples:
        words = shlex.split(line, comments=True)
        assert words[0] == "nmodal"
        args = build_parser().parse_args(words[1:])  # argparse exits (SystemExit) on an error
        assert callable(args.handler), line


def test_help_on_the_command_line_prints_the_examples(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as stop:
        main(["search", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert 'nmodal search data/index --text "convoy on the highway"' in out


def test_protocol_example_uses_the_epoch_grid_flag():
    first, *_ = example_lines(PARSERS["nmodal protocol"].format_help())
    assert "--epoch-grid 1,10,50" in first and "--epochs 1," not in first
    args = build_parser().parse_args(shlex.split(first, comments=True)[1:])
    assert args.epoch_grid == [1, 10, 50]


def test_a_broken_example_would_fail():
    """The parse check is real: a wrong flag in an example makes argparse exit."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(shlex.split("protocol store --out o --epochs 1,10,50"))
