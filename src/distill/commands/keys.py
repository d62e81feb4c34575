"""`distill keys new --out FILE`: an Ed25519 signing key for lineage.json."""

from __future__ import annotations

import argparse

from distill.commands import add_actions

NAME = "keys"
HELP = "create or inspect Ed25519 keys that sign lineage.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    new, fp = add_actions(
        parser, "keys_command",
        ("new", "write a new private key (PEM, mode 0600) and FILE.pub",
         "Write a new Ed25519 private key to FILE (PEM, readable by you only) and its public key to FILE.pub, and "
         "print the public key's fingerprint. Keep FILE out of model and output directories; use it with "
         "`distill train --signing-key FILE` or DISTILL_SIGNING_KEY=FILE."),
        ("fingerprint", "print the fingerprint of a key file (public or private)", None))
    new.add_argument("--out", required=True, metavar="FILE", help="where to write the private key")
    new.add_argument("--force", action="store_true", help="overwrite an existing FILE")
    fp.add_argument("file", metavar="FILE")


def run(args: argparse.Namespace) -> int:
    from distill.keys import signing

    if args.keys_command == "new":
        path, fingerprint = signing.new_key(args.out, force=args.force)
        print(f"private key: {path} (mode 0600; keep it secret, outside model directories)")
        print(f"public key:  {path.with_name(path.name + '.pub')}")
        print(f"fingerprint: {fingerprint}")
        return 0
    print(signing.fingerprint(signing.load_public_key(args.file)))
    return 0
