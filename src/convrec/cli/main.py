"""The ``convrec`` command: one CLI with subcommands. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import logging
import sys

from convrec import __version__
from convrec.cli import align_cmd, chat_cmd, data_cmd, eval_cmd, train_cmd
from convrec.io import DataError

DESCRIPTION = """\
convrec: conversational recommendation with honest evaluation.

Typical first run (the data mirror is a local folder with the public datasets):
  export CONVREC_DATA_MIRROR=../shared/data
  convrec data fetch redial
  convrec eval --dataset redial --recommender ease --protocol both
  convrec results            # the README's baseline table, reproduced
  convrec chat               # talk to the recommender (retriever + local LLM re-ranker)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convrec", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"convrec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    data_cmd.add_parser(commands)
    eval_cmd.add_parsers(commands)
    train_cmd.add_parser(commands)
    align_cmd.add_parser(commands)
    chat_cmd.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return int(args.handler(args) or 0)
    except DataError as err:
        print(f"convrec: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("convrec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
