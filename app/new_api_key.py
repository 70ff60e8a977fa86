"""Mint an API key:

    python -m app.new_api_key --id ci-bot --role submitter --project demo

prints the key once and the entry to add to the keys file (see app/api_keys.py). A module
of its own, which the `app` package never imports, so that running it is not running a
module already imported.
"""

from __future__ import annotations

import argparse
import json

from app.api_keys import Role, new_key


def main(argv: list[str] | None = None) -> None:
    """Mint a key; print it once, and the keys-file entry that grants it."""
    parser = argparse.ArgumentParser(prog="python -m app.new_api_key", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--id", required=True, help="a name for the key, e.g. ci-bot")
    parser.add_argument("--role", choices=[role.value for role in Role], default="submitter")
    parser.add_argument("--project", action="append", required=True,
                        help="a project the key may act in (repeat; '*' for all)")
    args = parser.parse_args(argv)
    key, entry = new_key(args.id, Role(args.role), args.project)
    print(f"key (shown once, give it to the caller): {key}")
    print(f"add to the \"keys\" list of the keys file:\n{json.dumps(entry)}")


if __name__ == "__main__":
    main()
