"""``lienthong agency add|list|remove|pin|unpin``: directory changes, signed with the administrator key.

Each command reads ``DATA/settings.yaml`` (the broker and the administrator key, as ``lienthong deadletter`` does),
reads ``lienthong.directory`` to its end, checks the change against it, and writes one signed record
(``hub.signed_directory``); the workers apply it within seconds and record it in the ledger.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from cryptography import x509
from kafka.errors import KafkaError

from hub.access import provision_agency
from hub.commands._common import emit_json, hub_settings, lienthong_command, require_hub, server_command
from hub.directory import Agency, Route, spki_digest
from hub.settings import HubSettings
from hub.signed_directory import (
    DirectoryState,
    admin_signing_key,
    current_directory,
    publish_records,
    sign_record,
)
from schemas.errors import HubError
from signer.devpki import spki_sha256

__all__ = ["register_directory_commands"]

_DEFAULT_DATA = Path("data")


class _Refused(HubError):
    """The command cannot do what was asked; the message says what to do instead."""


def register_directory_commands(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``add``, ``list``, ``remove``, ``pin`` and ``unpin`` to the ``agency`` sub-command group."""
    add = group.add_parser("add", help="add an agency to the directory (a signed record)")
    add.add_argument("organ_id", metavar="ORGANID")
    add.add_argument("--name", required=True, help="the agency's name")
    add.add_argument("--route", choices=[r.value for r in Route], default=Route.LOCAL.value)
    _pin_arguments(add, required=False)
    add.set_defaults(func=server_command("agency add")(functools.partial(_run, change="add")))

    listing = group.add_parser("list", help="each agency: route, pins, who signed its last change")
    listing.add_argument("--json", action="store_true", help="one JSON object per agency")
    listing.set_defaults(func=run_list)

    remove = group.add_parser("remove", help="remove an agency (a signed removal record)")
    remove.add_argument("organ_id", metavar="ORGANID")
    remove.set_defaults(func=server_command("agency remove")(functools.partial(_run, change="remove")))

    for verb, text in (("pin", "allow a signing key for the agency"), ("unpin", "stop allowing a signing key")):
        parser = group.add_parser(verb, help=text)
        parser.add_argument("organ_id", metavar="ORGANID")
        _pin_arguments(parser, required=True)
        parser.set_defaults(func=server_command(f"agency {verb}")(functools.partial(_run, change=verb)))

    for parser in (add, listing, remove, *(group.choices[v] for v in ("pin", "unpin"))):
        parser.add_argument(
            "--data", type=Path, default=_DEFAULT_DATA, metavar="DIR", help="the hub's data folder (settings.yaml)"
        )


def _pin_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    keys = parser.add_mutually_exclusive_group(required=required) if required else parser
    many = "append" if not required else "store"
    spki = "--spki" if required else "--pin"
    keys.add_argument(spki, dest="spki", action=many, metavar="SPKI_SHA256_HEX", help="the key's SPKI SHA-256")
    keys.add_argument("--cert", dest="cert", action=many, type=Path, metavar="PEM", help="the key's certificate")


def _pins(args: argparse.Namespace) -> set[str]:
    """The SPKI SHA-256s named by ``--spki``/``--pin`` and ``--cert`` (one value or a list)."""

    def listed(value: object) -> list[object]:
        return [] if value is None else list(value) if isinstance(value, list) else [value]

    pins = set()
    for text in listed(args.spki):
        digest = spki_digest(text)
        if digest is None:
            raise _Refused(f"{text!r} is not a SHA-256 in hex (64 digits); or give the certificate with --cert PEM")
        pins.add(digest)
    for path in listed(args.cert):
        assert isinstance(path, Path)
        try:
            certs = x509.load_pem_x509_certificates(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise _Refused(f"cannot read the certificate {path}: {exc}") from exc
        pins.add(spki_sha256(certs[0]))
    return pins


def _current(settings: HubSettings) -> DirectoryState:
    try:
        return current_directory(settings)
    except KafkaError as exc:
        where = settings.kafka_bootstrap
        raise _Refused(f"cannot read the directory from {where} ({exc}): is the hub running?") from exc


def _write(settings: HubSettings, state: DirectoryState, organ_id: str, agency: Agency | None) -> None:
    """Sign and publish the record setting ``organ_id`` to ``agency`` (None removes it)."""
    issued_at = state.next_issued_at(organ_id)
    with admin_signing_key(settings) as key:
        value = sign_record(key, organ_id, agency, issued_at)
    try:
        if agency is not None:  # the broker creates no topic by itself: an agency's topics and ACLs come first
            provision_agency(settings, agency)
        publish_records(settings.kafka, [(organ_id, value)])
    except KafkaError as exc:
        raise _Refused(f"cannot write to {settings.kafka_bootstrap} ({exc}): is the hub running?") from exc


def _known(state: DirectoryState, organ_id: str) -> Agency:
    agency = state.directory.get(organ_id)
    if agency is None:
        raise _Refused(
            f"{organ_id} is not in the directory; see `{lienthong_command()} agency list`, or add it with `agency add`"
        )
    return agency


def _run(args: argparse.Namespace, change: str) -> int:
    """Apply ``change`` (add, remove, pin, unpin) and print one line; exit 1 with one line on a problem."""
    try:
        settings = require_hub(hub_settings(args.data))
        state = _current(settings)
        organ_id = args.organ_id
        if change == "add":
            if state.directory.get(organ_id) is not None:
                raise _Refused(f"{organ_id} is already in the directory; change its keys with `agency pin|unpin`")
            new: Agency | None = Agency.from_mapping(
                {"id": organ_id, "name": args.name, "route": args.route, "cert_spki_sha256": sorted(_pins(args))},
                "agency add",
            )
        elif change == "remove":
            _known(state, organ_id)
            new = None
        else:
            agency = _known(state, organ_id)
            pins = agency.cert_spki_sha256 | _pins(args) if change == "pin" else agency.cert_spki_sha256 - _pins(args)
            if pins == agency.cert_spki_sha256:
                state_text = "already" if change == "pin" else "not"
                raise _Refused(f"{organ_id}: nothing to change (the key is {state_text} pinned)")
            new = Agency(agency.id, agency.name, agency.route, frozenset(pins))
        _write(settings, state, organ_id, new)
    except HubError as exc:
        print(f"lienthong agency {change}: {exc}", file=sys.stderr)
        return 1
    pins_text = "" if new is None else f" ({new.route.value}, {len(new.cert_spki_sha256)} pinned key(s))"
    print(f"{change} {organ_id}{pins_text}: signed record written; the workers apply it within seconds")
    return 0


@server_command("agency list")
def run_list(args: argparse.Namespace) -> int:
    """Print each agency with its route, pins and the administrator certificate that signed its last change."""
    try:
        settings = require_hub(hub_settings(args.data))
        state = _current(settings)
    except HubError as exc:
        print(f"lienthong agency list: {exc}", file=sys.stderr)
        return 1
    for agency in sorted(state.directory, key=lambda a: a.id):
        last = state.applied[agency.id]
        row = {
            **agency.to_mapping(),
            "signed_by": last.signer,
            "issued_at": last.issued_at.isoformat(),
        }
        if args.json:
            emit_json(row)
        else:
            pins = ", ".join(p[:16] + "…" for p in row["cert_spki_sha256"]) or "-"
            print(f"{agency.id:<16} {agency.route.value:<5} {agency.name}  pins: {pins}  signed by {last.signer[:16]}…")
    if not args.json:
        print(f"{len(state.directory)} agencies")
    return 0
