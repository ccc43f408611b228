"""How every ``nmodal`` help page ends: runnable examples (checked by a test that parses them).

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser(prog="nmodal train", formatter_class=HelpFormatter)
    >>> add_examples(p, "nmodal train store/ --out models/m1")
    >>> p.format_help().rstrip().splitlines()[-1]
    '  nmodal train store/ --out models/m1'
"""

from __future__ import annotations

import argparse
import re
import textwrap

EXAMPLES_HEADING = "examples:"


class HelpFormatter(argparse.HelpFormatter):
    """Wraps prose paragraphs (split by blank lines) and keeps indented blocks as written,
    so descriptions reflow to the terminal while example commands stay one per line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = re.split(r"\n\s*\n", text.strip("\n"))
        out = []
        for para in paragraphs:
            lines = para.splitlines()
            if any(line.startswith(" ") for line in lines[1:]) or para.startswith(" "):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(
                    textwrap.fill(
                        " ".join(para.split()),
                        width,
                        initial_indent=indent,
                        subsequent_indent=indent,
                    )
                )
        return "\n\n".join(out)


def add_examples(parser: argparse.ArgumentParser, *examples: str) -> None:
    """End ``parser``'s help with ``examples`` (whole ``nmodal ...`` command lines; a
    trailing ``# comment`` says what the line does)."""
    parser.formatter_class = HelpFormatter
    parser.epilog = EXAMPLES_HEADING + "\n" + "\n".join(f"  {line}" for line in examples)


def example_lines(help_text: str) -> list[str]:
    """The example command lines at the end of a help page (empty when it has none)."""
    _, sep, tail = help_text.rpartition("\n" + EXAMPLES_HEADING + "\n")
    if not sep:
        return []
    return [line.strip() for line in tail.splitlines() if line.strip()]
