"""`mtlrun` and `python -m mtlrun`: the command, where a Ctrl-C at any moment of start-up (while
the command's modules are still importing) ends as `mtlrun: interrupted`, exit status 130, not
as a traceback. Nothing is imported before the guard but this package's version."""

import sys


def main() -> None:
    try:
        from mtlrun.cli import main as command

        command()
    except KeyboardInterrupt:
        print("mtlrun: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
