"""The `duel` command's entry, for the console script and `python -m duel`: duel.cli, and all it
imports, load inside `main`, so a Ctrl-C while Python is still importing them ends as any
interrupted command does (one line, exit 130), not with a traceback."""

import sys


def main() -> None:
    try:
        from duel.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted before the command started; nothing was done\n")
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
