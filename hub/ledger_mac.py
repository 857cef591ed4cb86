"""The MAC that marks a ``lienthong.ledger`` record as a hub worker's own: HMAC-SHA256 under ``ledger_key``.

ACLs keep everyone but the hub off ``lienthong.ledger``; this keeps a record that got there anyway (a misconfigured
ACL, an operator's credentials) out of the Merkle log. Workers put the HMAC-SHA256 of each ledger record's value,
under the key only they hold, in the record's ``lienthong-mac`` header; the ledger writer appends only records
whose MAC verifies, and counts and logs the others. Pure: no I/O.

The MAC covers the value only: a genuine record copied back onto the topic (at a new offset) would verify and be
appended again. Copying one takes reading ``lienthong.ledger``, which only the hub's principal may do.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from hub.records import LEDGER, Headers, OutboundRecord
from hub.settings import HubSettings
from hub.trust import ConfigError
from storage.ledger import LedgerEvent, encode_ledger_record

__all__ = ["H_MAC", "MIN_LEDGER_KEY_CHARS", "ledger_key", "ledger_mac", "ledger_output", "mac_refusal"]

H_MAC = "lienthong-mac"
#: A generated key is 32 characters (24 random bytes, 192 bits); a key given by hand must not be shorter.
MIN_LEDGER_KEY_CHARS = 32


def ledger_key(settings: HubSettings) -> bytes:
    """The workers' ledger key, or a one-line ``ConfigError`` saying how to give one."""
    if len(settings.ledger_key) < MIN_LEDGER_KEY_CHARS:
        raise ConfigError(
            f"no ledger_key of at least {MIN_LEDGER_KEY_CHARS} characters in the settings: `lienthong up` generates"
            " one in DATA/secrets.yaml; a worker started on its own needs the same value (settings file or"
            " LIENTHONG_LEDGER_KEY) as every other worker"
        )
    return settings.ledger_key.encode()


def ledger_mac(key: bytes, value: bytes) -> bytes:
    """The ``lienthong-mac`` header of a ledger record with ``value``: hex HMAC-SHA256 under ``key``."""
    return hmac.new(key, value, hashlib.sha256).hexdigest().encode()


def ledger_output(key: bytes, events: Sequence[LedgerEvent], receipts: Sequence[bytes] = ()) -> OutboundRecord:
    """The ``lienthong.ledger`` record of ``events`` (and the receipts they name), with the workers' MAC."""
    value = encode_ledger_record(events, receipts)
    return OutboundRecord(LEDGER, None, value, ((H_MAC, ledger_mac(key, value)),))


def mac_refusal(key: bytes, value: bytes | None, headers: Headers) -> str | None:
    """Why a ledger record is not a worker's own (``missing_mac``, ``bad_mac``), or None when its one MAC verifies."""
    macs = [v for name, v in headers if name == H_MAC]
    if not macs:
        return "missing_mac"
    if len(macs) > 1 or not hmac.compare_digest(macs[0], ledger_mac(key, value or b"")):
        return "bad_mac"
    return None
