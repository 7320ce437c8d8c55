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
from aciemu.emulator import Emulator
from aciemu.groupstate import Timings
from aciemu.images import ImageCatalogInvalid, load_catalog
from aciemu.limits import Limits, LimitsInvalid, merge_flags, parse_window
from aciemu.routes import serve


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
    parser.add_argument(
        "--create-rate", type=int, help="creates allowed per 5 minutes (same as --create-window N/300); default off"
    )
    limits = parser.add_argument_group("subscription limits (all off by default; see README, 'Subscription limits')")
    limits.add_argument("--limits", metavar="FILE", help="JSON limits document (windows, spotCores, spotLocations)")
    limits.add_argument("--limits-json", metavar="JSON", help="the same document given inline")
    limits.add_argument(
        "--aci-limits", action="store_true", help="ACI's published windows (100/5 min, 300/h) and Spot regions"
    )
    limits.add_argument(
        "--create-window", action="append", default=[], metavar="N/SECONDS", help="a create rate window (repeatable)"
    )
    limits.add_argument(
        "--delete-window", action="append", default=[], metavar="N/SECONDS", help="a delete rate window (repeatable)"
    )
    limits.add_argument("--spot-cores", type=float, help="regional Spot core quota (default: shares --max-cores)")
    limits.add_argument(
        "--spot-locations", metavar="A,B", help="the only locations that offer Spot (default: every location)"
    )
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


def limits_from(args: argparse.Namespace) -> Limits:
    """The limits the flags ask for: a document (file, inline or the ACI preset), then the single flags."""
    documents = [text for text in (args.limits_json,) if text]
    if args.limits:
        documents.append(Path(args.limits).read_text())
    if len(documents) + bool(args.aci_limits) > 1:
        raise LimitsInvalid("give at most one of --limits, --limits-json and --aci-limits")
    try:
        base = Limits.from_dict(json.loads(documents[0])) if documents else Limits()
    except json.JSONDecodeError as error:
        raise LimitsInvalid(f"the limits document is not JSON: {error}") from None
    if args.aci_limits:
        base = Limits.published()
    return merge_flags(
        base,
        creates=[parse_window(text) for text in args.create_window],
        deletes=[parse_window(text) for text in args.delete_window],
        spot_cores=args.spot_cores,
        spot_locations=None if args.spot_locations is None else args.spot_locations.split(","),
    )


async def main_async(args: argparse.Namespace) -> None:
    images = load_catalog(Path(args.images)) if args.images else {}
    limits = limits_from(args)
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
        limits=limits,
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
    except (ImageCatalogInvalid, auth.TokenFileInvalid, LimitsInvalid) as error:
        print(f"aciemu: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the port is taken, or the data folder is not writable
        print(f"aciemu: {error.strerror or error}{f' ({error.filename})' if error.filename else ''}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
