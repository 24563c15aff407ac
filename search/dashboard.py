"""``python -m search.dashboard``: optuna-dashboard on 127.0.0.1 over the studies' storage.

The same as ``optuna-dashboard sqlite:///$CFTUNE_HOME/optuna.db``, bound to the loopback interface so a
study's
parameters are not served to the network by accident.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from search.settings import default_storage


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m search.dashboard", description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", default=None, help="default: the sqlite storage under $CFTUNE_HOME")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    args = p.parse_args(argv)
    args.storage = args.storage or default_storage()
    # lazy: optuna_dashboard costs ~2.8 s to import: only when the dashboard is served
    from optuna_dashboard import run_server

    print(f"optuna-dashboard on http://{args.host}:{args.port}/  (storage {args.storage}; Ctrl-C stops)")
    try:
        run_server(args.storage, host=args.host, port=args.port)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
