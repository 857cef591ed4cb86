"""``lienthong sign IN OUT``: sign one edXML document with a PEM key, a PKCS#12 bundle or a PKCS#11 token."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509

from hub.commands._large import is_large, max_document_bytes, opener
from schemas.errors import HubError
from signer.keys import PemKey, Pkcs11Key, Pkcs12Key, SigningKey
from signer.sign import sign_document, sign_stream

__all__ = ["add_key_arguments", "load_key", "register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sign`` sub-command."""
    parser = subparsers.add_parser(
        "sign",
        help="sign an edXML document (enveloped XMLDSig, rsa-sha256 / ecdsa-sha256)",
        description="Sign IN and write the signed document to OUT ('-' for standard output).",
    )
    parser.add_argument("input", metavar="IN", type=Path, help="the unsigned edXML document")
    parser.add_argument("output", metavar="OUT", help="where to write the signed document, or -")
    add_key_arguments(parser)
    parser.add_argument("--include-root", action="store_true", help="also include a self-signed root")
    parser.add_argument(
        "--max-bytes", type=int, help="refuse larger files (default: the max_document_bytes setting, 150 MiB)"
    )
    parser.set_defaults(func=run)


def add_key_arguments(parser: argparse.ArgumentParser) -> None:
    """The key-source options shared by every command that signs (``sign``, ``status``)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--key", type=Path, help="PEM private key (use with --cert)")
    source.add_argument("--pkcs12", type=Path, metavar="FILE", help="PKCS#12 bundle: key, certificate, chain")
    source.add_argument("--pkcs11-uri", metavar="URI", help="RFC 7512 pkcs11: URI of a key inside a token")
    parser.add_argument("--cert", type=Path, help="PEM certificate of the key (required with --key)")
    parser.add_argument("--chain", type=Path, metavar="PEM", help="PEM issuers to include, nearest first")
    parser.add_argument(
        "--password-env",
        metavar="VAR",
        help="environment variable holding the password of --key or --pkcs12 (never on the command line)",
    )


def _password(args: argparse.Namespace) -> bytes | None:
    if not args.password_env:
        return None
    value = os.environ.get(args.password_env)
    if value is None:
        raise HubError(f"environment variable {args.password_env} is not set")
    return value.encode()


def load_key(args: argparse.Namespace) -> tuple[SigningKey, tuple[x509.Certificate, ...]]:
    """The signing key and its chain from ``--key/--cert``, ``--pkcs12`` or ``--pkcs11-uri``."""
    if args.key is not None:
        if args.cert is None:
            raise HubError("--key needs --cert")
        pem = PemKey.load(args.key.read_bytes(), args.cert.read_bytes(), _password(args))
        return pem, pem.chain
    if args.pkcs12 is not None:
        p12 = Pkcs12Key.load(args.pkcs12.read_bytes(), _password(args))
        return p12, p12.chain
    cert = x509.load_pem_x509_certificate(args.cert.read_bytes()) if args.cert is not None else None
    return Pkcs11Key.open(args.pkcs11_uri, cert=cert), ()


def run(args: argparse.Namespace) -> int:
    """Sign one document; exit 0 on success, 1 on a refused document or an unusable key."""
    try:
        max_bytes = args.max_bytes if args.max_bytes is not None else max_document_bytes()
        key, chain = load_key(args)
        try:
            if args.chain is not None:
                chain = tuple(x509.load_pem_x509_certificates(args.chain.read_bytes()))
            if is_large(args.input):  # two streamed passes: memory does not grow with the attachments
                signed: Iterable[bytes] = sign_stream(
                    opener(args.input),
                    key,
                    chain=chain,
                    include_root=args.include_root,
                    max_bytes=max_bytes,
                    size=args.input.stat().st_size,
                )
            else:
                data = args.input.read_bytes()
                signed = [sign_document(data, key, chain=chain, include_root=args.include_root, max_bytes=max_bytes)]
            _write(signed, args.output)
        finally:
            if isinstance(key, Pkcs11Key):
                key.close()
    except (HubError, OSError, ValueError) as exc:
        print(f"lienthong sign: {exc}", file=sys.stderr)
        return 1
    return 0


def _write(chunks: Iterable[bytes], output: str) -> None:
    """Write ``chunks`` to ``output`` (``-``: standard output); a file appears only once complete."""
    if output == "-":
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        return
    target = Path(output)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with partial.open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
