"""``python -m boxtune.tuning.driver SPEC_JSON``: drives a tuning job started with
``run_tuning(spec, wait=False)`` to its end, detached from the process that started it.

Its output (the progress lines) goes to the tuning job's ``driver.log``; SIGTERM or SIGINT stop
the running trials, as Ctrl-C does for a tuning job run in the foreground.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from boxtune.errors import BoxtuneError


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def say(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} {message}", flush=True)


def drive(spec_path: Path) -> int:
    from boxtune.tuning import study as st
    from boxtune.tuning.runner import Tuner
    from boxtune.tuning.spec import TuningSpec, check_spec

    spec = TuningSpec.read(spec_path)
    checked = check_spec(spec)
    study = st.load_study(spec.name, st.open_storage(spec.storage_url), checked)
    say(f"driving tuning job {spec.name} (storage {spec.storage_url})")
    Tuner(checked, study, log=say, driver_log=str(spec_path.parent / "driver.log")).run()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m boxtune.tuning.driver SPEC_JSON", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        return drive(Path(argv[0]))
    except KeyboardInterrupt:
        say("stopped by a signal")
        return 0
    except BoxtuneError as exc:
        say(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
