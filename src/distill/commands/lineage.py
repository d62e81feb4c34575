"""`distill lineage verify DIR` / `distill lineage show DIR`: check and display a student's signed lineage."""

from __future__ import annotations

import argparse
import json

from distill.commands import add_actions

NAME = "lineage"
HELP = "verify or show a student's lineage.json (signature, weights hash, teacher chain)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verify, show = add_actions(
        parser, "lineage_command",
        ("verify", "check signature, weights hash and chain (exit 4 on failure)",
         "Check DIR/lineage.json: its Ed25519 signature, that the weights match the recorded hash, and the embedded "
         "teacher lineage. Exit 0 when everything checks out (an unsigned record passes with status UNSIGNED unless "
         "--require-signature), 4 when anything was tampered with."),
        ("show", "print the lineage as a model-card section (markdown)", None))
    verify.add_argument("directory", metavar="DIR", help="a student directory, or an export written by `distill "
                        "export` (a .gguf file or a directory): its record's signature, the exported weights "
                        "against the hash recorded at export, and the student lineage it carries")
    verify.add_argument("--trusted-key", metavar="PUBFILE",
                        help="require this signer: a public key file (FILE.pub) or a 'sha256:...' fingerprint")
    verify.add_argument("--require-signature", action="store_true", help="fail when lineage.json is unsigned")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    show.add_argument("directory", metavar="DIR")
    show.add_argument("--json", action="store_true", help="print the raw record")


def run(args: argparse.Namespace) -> int:
    from distill.errors import DistillError
    from distill.provenance import lineage

    if args.lineage_command == "show":
        record = lineage.read_lineage(args.directory)
        if record is None:
            raise DistillError(f"no lineage.json in {args.directory}", where=args.directory, code=4,
                               fix="point at a student directory written by `distill train`")
        print(json.dumps(record, indent=2, ensure_ascii=False) if args.json else lineage.card_section(record))
        return 0
    from distill.deploy import record

    if record.is_export(args.directory):  # a file or directory `distill export` wrote, with its record
        result = record.verify_export(args.directory, trusted_key=args.trusted_key,
                                      require_signature=args.require_signature)
        label, what = "export record signature", "export"
        lines = [f"exported weights: {'match' if result.weights_ok else 'MISMATCH'}",
                 f"student lineage carried: {result.source_lineage}"]
    else:
        result = lineage.verify(args.directory, trusted_key=args.trusted_key,
                                require_signature=args.require_signature)
        label, what = "signature", "lineage"
        lines = [f"weights: {'match' if result.weights_ok else 'MISMATCH' if result.weights_ok is False else 'n/a'}",
                 "chain:", *(f"  {line}" for line in lineage.chain_lines(result.chain))]
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(f"status: {result.status}")
        print(f"{label}: {result.signature}" + (f" (signer {result.signer})" if result.signer else ""))
        if result.trusted is not None:
            print(f"trusted signer: {'yes' if result.trusted else 'NO'}")
        print("\n".join(lines))
    if not result.ok:
        raise DistillError(f"{what} verification failed: " + "; ".join(result.problems), where=args.directory,
                           code=4, fix="do not trust this model's provenance; obtain it again from its publisher")
    return 0
