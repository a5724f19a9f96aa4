"""``boxtune-container``, the image's ENTRYPOINT.

The platform starts a training container as ``docker run IMAGE train`` and a hosting one as
``docker run IMAGE serve``: those two words run ``boxtune container train|serve`` (options
after them pass along: ``serve --workers 2``). Anything else is a ``boxtune`` command
(``docker run IMAGE models list``; a leading ``boxtune`` is dropped).
"""

from __future__ import annotations

import sys

PROGRAMS = ("train", "serve")


def main(argv: list[str] | None = None) -> int:
    from boxtune import cli

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["boxtune"]:
        args = args[1:]
    elif args[:1] and args[0] in PROGRAMS:
        args = ["container", *args]
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
