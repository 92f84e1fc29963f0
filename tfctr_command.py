"""The ``tfctr`` console command (``setup.py``'s entry point).

It lives outside the ``tfctr`` package on purpose: importing ``tfctr`` loads TensorFlow, which takes seconds,
because every tfctr layer must be registered with Keras before a saved model is loaded. When the command is only
asked for help (``-h``/``--help`` anywhere, or no arguments) it sets ``HELP_ONLY`` before importing the package,
the package then skips TensorFlow, and ``tfctr.cli`` builds its parser from ``tfctr.defaults`` alone.
"""

import sys

HELP_ONLY = False


def main() -> int:
    global HELP_ONLY
    argv = sys.argv[1:]
    HELP_ONLY = not argv or "-h" in argv or "--help" in argv
    from tfctr.cli import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
