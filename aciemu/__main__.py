"""`python -m aciemu`: serve the emulated ACI ARM API on 127.0.0.1 until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from aciemu import auth
from aciemu.groups import Timings
from aciemu.images import ImageCatalogInvalid, load_catalog
from aciemu.server import Emulator, serve


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aciemu", description="ARM-compatible Azure Container Instances emulator")
    parser.add_argument("--port", type=int, default=7073)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--data", default=".aciemu", help="state folder (groups survive restarts)")
    parser.add_argument("--faults", help="JSON file with a list of fault rules (see README)")
    parser.add_argument(
        "--images", help="JSON file mapping image patterns to a default command and/or a folder of image files"
    )
    parser.add_argument("--location", default="westeurope")
    parser.add_argument("--max-groups", type=int, default=100, help="regional container group quota")
    parser.add_argument("--max-cores", type=float, default=100.0, help="regional core quota")
    parser.add_argument("--create-rate", type=int, help="creates allowed per 5 minutes (real ACI: 100); default off")
    parser.add_argument("--page-size", type=int, default=100, help="groups per list page")
    parser.add_argument("--provisioning-seconds", type=float, default=0.02)
    parser.add_argument("--restart-backoff-scale", type=float, default=1.0)
    parser.add_argument("--eviction-restart-seconds", type=float, default=1.0)
    parser.add_argument("--no-bwrap", action="store_true", help="never use bubblewrap, even when installed")
    parser.add_argument("--fault-seed", type=int, help="seed for fault probabilities (reproducible runs)")
    parser.add_argument(
        "--token",
        help=f"the bearer token ARM requests must carry (default: ${auth.ENV}, else one kept in DATA/{auth.FILE_NAME})",
    )
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace) -> None:
    images = load_catalog(Path(args.images)) if args.images else {}
    token = auth.load_or_create(Path(args.data), args.token or os.environ.get(auth.ENV))
    emulator = Emulator(
        Path(args.data),
        location=args.location,
        max_groups=args.max_groups,
        max_cores=args.max_cores,
        create_rate=args.create_rate,
        page_size=args.page_size,
        images=images,
        timings=Timings(
            provisioning_seconds=args.provisioning_seconds,
            restart_backoff_scale=args.restart_backoff_scale,
            eviction_restart_seconds=args.eviction_restart_seconds,
        ),
        use_bwrap=False if args.no_bwrap else None,
        fault_seed=args.fault_seed,
    )
    if args.faults:
        for rule in json.loads(Path(args.faults).read_text()):
            emulator.faults.add(rule)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(emulator, args.host, args.port, stop, token)


def main(argv: list[str] | None = None) -> int:
    try:
        asyncio.run(main_async(parse_args(argv)))
    except (ImageCatalogInvalid, auth.TokenFileInvalid) as error:
        print(f"aciemu: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the port is taken, or the data folder is not writable
        print(f"aciemu: {error.strerror or error}{f' ({error.filename})' if error.filename else ''}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
