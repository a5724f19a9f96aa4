"""``boxtune cache list`` and ``boxtune cache prune``: the extracted-artifact cache."""

from __future__ import annotations

import argparse
import json

from boxtune.errors import BoxtuneError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="list or prune the extracted model.tar.gz files in BOXTUNE_HOME/artifacts",
        description="Every model.tar.gz boxtune loads is extracted once into "
        "BOXTUNE_HOME/artifacts/<sha256>; BOXTUNE_CACHE_MAX_BYTES (default 20 GiB) caps it, "
        "least recently used first. Entries in use by a running process are never removed.",
    )
    sub = parser.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="the entries, most recently used first")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_list)
    prune = sub.add_parser("prune", help="remove entries (all, or down to a size)")
    prune.add_argument(
        "--max-size",
        metavar="SIZE",
        help="keep at most SIZE (e.g. 5GB, 500MB), removing the least recently used first; "
        "without it every entry not in use is removed",
    )
    prune.add_argument("--json", action="store_true", help="print JSON")
    prune.set_defaults(handler=_prune)


def _list(args: argparse.Namespace) -> int:
    from boxtune import cache
    from boxtune.commands.tables import format_table
    from boxtune.fileio import human_bytes

    entries = cache.list_entries()
    if args.json:
        print(json.dumps([e.to_json() for e in entries], indent=2))
        return 0
    if not entries:
        print(f"the cache is empty ({cache.cache_dir()})")
        return 0
    rows = [
        [
            e.key,
            e.model_id or "?",
            e.to_json()["size"],
            e.files,
            e.to_json()["last_used"],
            "yes" if e.in_use else "no",
        ]
        for e in entries
    ]
    print(format_table(["KEY", "MODEL ID", "SIZE", "FILES", "LAST USED", "IN USE"], rows))
    total = sum(e.size_bytes for e in entries)
    print(
        f"\n{len(entries)} entries, {human_bytes(total)} in {cache.cache_dir()} "
        f"(cap {human_bytes(cache.max_cache_bytes())})"
    )
    return 0


def _prune(args: argparse.Namespace) -> int:
    from boxtune import cache
    from boxtune.fileio import human_bytes

    max_bytes = 0
    if args.max_size is not None:
        try:
            max_bytes = cache.parse_size(args.max_size)
        except ValueError as exc:
            raise BoxtuneError(
                str(exc), where="--max-size", hint="give a size such as 5GB, 500MB or 0"
            ) from None
    result = cache.prune(max_bytes=max_bytes)
    if args.json:
        print(
            json.dumps(
                {
                    "removed": [e.to_json() for e in result.removed],
                    "in_use": [e.to_json() for e in result.kept_in_use],
                    "freed_bytes": result.freed_bytes,
                    "remaining_bytes": result.remaining_bytes,
                },
                indent=2,
            )
        )
        return 0
    for entry in result.removed:
        print(f"removed {entry.key} ({entry.model_id or '?'}, {human_bytes(entry.size_bytes)})")
    for entry in result.kept_in_use:
        print(f"kept {entry.key} ({entry.model_id or '?'}): in use by a running process")
    print(
        f"freed {human_bytes(result.freed_bytes)}; "
        f"{human_bytes(result.remaining_bytes)} remain in {cache.cache_dir()}"
    )
    return 0
