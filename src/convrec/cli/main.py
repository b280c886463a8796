"""The ``convrec`` command: one CLI with subcommands. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
import traceback
from pathlib import Path

from convrec import __version__
from convrec.cli import align_cmd, chat_cmd, data_cmd, eval_cmd, harpo_cmd, serve_cmd, simulate_cmd, train_cmd
from convrec.errors import ConvrecError
from convrec.resources import Resources

# Exit codes: 2 for an expected failure (bad input, config, checkpoint, unreachable LLM; argparse uses 2 for
# bad arguments too), 70 (EX_SOFTWARE) for a bug in convrec, 130 for Ctrl-C.
EXIT_ERROR = 2
EXIT_BUG = 70
EXIT_INTERRUPTED = 130
# Set by the test suite (and by developers who want the stack on screen): a bug propagates instead of being
# reported, so an unexpected exception type fails the test that caused it.
RAISE_BUGS_ENV = "CONVREC_RAISE_BUGS"

DESCRIPTION = """\
convrec: conversational recommendation with honest evaluation.

Typical first run (the data mirror is a local folder with the public datasets):
  export CONVREC_DATA_MIRROR=../shared/data
  convrec data fetch redial
  convrec eval --dataset redial --recommender ease --protocol both
  convrec results            # the baseline table (docs/results/baselines.md), reproduced
  convrec chat               # talk to the recommender (retriever + local LLM re-ranker)
  convrec serve --no-llm     # the same over HTTP: http://127.0.0.1:8000/docs
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
    serve_cmd.add_parser(commands)
    simulate_cmd.add_parser(commands)
    harpo_cmd.add_parser(commands)
    return parser


def bug_report_dir() -> Path:
    """Where bug reports go: ``$CONVREC_LOG_DIR``, else ``$CONVREC_CACHE_DIR/logs`` (``~/.cache/convrec/logs``)."""
    if os.environ.get("CONVREC_LOG_DIR"):
        return Path(os.environ["CONVREC_LOG_DIR"])
    return Resources.from_env().cache_dir / "logs"


def write_bug_report(argv: list[str], error: BaseException) -> Path | None:
    """The stack and the command line in a log file; None when even that cannot be written."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = bug_report_dir() / f"convrec-bug-{stamp}-{os.getpid()}.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"convrec {__version__}, Python {sys.version.split()[0]}\n"
                        f"command: convrec {' '.join(argv)}\n\n"
                        + "".join(traceback.format_exception(error)), encoding="utf-8")
    except OSError:
        return None
    return path


def report_error(error: ConvrecError) -> None:
    print(f"convrec: error: {error}", file=sys.stderr)
    if error.hint:
        print(f"  {error.hint}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if not args.verbose:  # the OpenAI SDK's HTTP client logs every request at INFO
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.handler(args) or 0)
    except ConvrecError as err:
        report_error(err)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("convrec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if os.environ.get(RAISE_BUGS_ENV):
            raise
        path = write_bug_report(argv, err)
        where = f"the full report is in {path}" if path else "no report could be written"
        print(f"convrec: internal error: {type(err).__name__}: {err}", file=sys.stderr)
        print(f"  This is a bug in convrec, not in your input; {where}. Please attach it to an issue.",
              file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
