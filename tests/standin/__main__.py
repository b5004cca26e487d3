"""Run the W&B stand-in standalone (test infrastructure): `python -m tests.standin --port 8765`.

Prints the base URL, entity and API key to use, then serves until interrupted."""

from __future__ import annotations

import argparse

from tests.standin.server import DEFAULT_API_KEY, DEFAULT_ENTITY, StandinServer


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.standin", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--entity", default=DEFAULT_ENTITY)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--verbose", action="store_true", help="print every operation as it arrives")
    args = parser.parse_args()
    server = StandinServer(host=args.host, port=args.port, entity=args.entity, api_key=args.api_key)
    if args.verbose:
        original = server._log

        def log(record):  # type: ignore[no-untyped-def]
            original(record)
            print(record.status, record.method, record.path, record.operation or "", flush=True)

        server._log = log  # type: ignore[method-assign]
    print(
        f"WANDB_BASE_URL={server.base_url}\nWANDB_ENTITY={server.entity}\nWANDB_API_KEY={server.api_key}",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
