"""`mtlrun` and `python -m mtlrun`: the command, where a Ctrl-C at any moment of start-up (while
the command's modules are still importing) ends as `mtlrun: interrupted`, exit status 130, not
as a traceback, and output its reader cuts short (`| head`) ends quietly. Nothing is imported
before the guard but this package's version."""

import os
import sys


def main() -> None:
    try:
        from mtlrun.cli import main as command

        command()
    except KeyboardInterrupt:
        print("mtlrun: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # `mtlrun list | head`: the reader has what it wanted
        # Python's own flush of stdout at exit would fail again: point it at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)  # a shell's status for a process ended by SIGPIPE


if __name__ == "__main__":
    main()
