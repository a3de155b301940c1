"""Test-side fault injection: ``python tests/kill_after.py N -- <galaxy-attn args>``.

Runs ``timm_galaxy_attn.cli.main`` with the function that commits a batch's part wrapped so that the process
SIGKILLs itself right after the N-th committed batch (what a crash or a killed job would leave behind).
Under ``accelerate launch ... tests/kill_after.py N -- ...`` each process counts its own batches.
"""

from __future__ import annotations

import os
import signal
import sys


def main(argv: list[str]) -> int:
    n, sep, *cli_args = argv
    if sep != "--":
        raise SystemExit("usage: python tests/kill_after.py N -- <galaxy-attn args>")
    from timm_galaxy_attn.catalog import run
    from timm_galaxy_attn.cli import main as cli_main

    commit, committed = run.commit_batch, []

    def commit_then_maybe_die(*args, **kwargs) -> int:
        done = commit(*args, **kwargs)
        committed.append(done)
        if len(committed) >= int(n):
            os.kill(os.getpid(), signal.SIGKILL)
        return done

    run.commit_batch = commit_then_maybe_die
    return cli_main(cli_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
