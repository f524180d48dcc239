"""`irtcat credential verify FILE`: check an Open Badges 3.0 credential offline.

FILE holds a credential as `GET /v1/sessions/{id}/credential` serves it: JSON with a
Data Integrity proof (eddsa-rdfc-2022), or the compact VC-JWT (``?format=jwt``); ``-``
reads standard input. The issuer's key is resolved from its did:key, the JSON-LD
contexts are the bundled ones: nothing is fetched. Exit 0 with one line "valid: ...",
or 2 with the reason on standard error (a changed byte, an unknown context, an issuer
that is not the signing key, a file that cannot be read).
"""

from __future__ import annotations

import sys


def add_command(commands):
    """Register `irtcat credential` (its arguments are defined when it is used)."""
    commands.add_parser("credential", help="verify an Open Badges 3.0 credential offline",
                        define=_define_credential)


def _define_credential(credential):
    actions = credential.add_subparsers(dest="credential_command", metavar="ACTION",
                                        parser_class=type(credential))
    actions.required = True
    verify = actions.add_parser(
        "verify", help="verify a credential's proof (Data Integrity or VC-JWT), offline",
        description="Exit 0 with one line 'valid: ...' when the proof holds, 2 with the "
                    "reason otherwise.")
    verify.add_argument("file", metavar="FILE", help="the credential (JSON or compact JWT); "
                                                     "- for standard input")
    verify.set_defaults(run=run_verify)


def run_verify(args):
    from irtcat.delivery.badges import verify_credential
    from irtcat.delivery.errors import ProofError

    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as handle:
                text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        print(f"invalid: cannot read {args.file}: {error}", file=sys.stderr)
        return 2
    try:
        print(verify_credential(text))
    except ProofError as error:
        print(f"invalid: {error}", file=sys.stderr)
        return 2
    return 0
