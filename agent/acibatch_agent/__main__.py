"""`python3 -m acibatch_agent stage-in|sidecar`."""

from __future__ import annotations

import sys

from . import sidecar, stagein

COMMANDS = {"stage-in": stagein.main, "sidecar": sidecar.main}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in COMMANDS:
        print(f"usage: python3 -m acibatch_agent {'|'.join(COMMANDS)}", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
