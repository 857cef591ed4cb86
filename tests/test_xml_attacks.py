"""Hostile and broken XML is refused with a clear error and nothing leaks, from the API and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from schemas import InvalidDocument, build_document, parse
from schemas.examples import example_edoc

SECRET = "lienthong-secret-7f3a9c"
NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + f']><edXML xmlns="{NS}">&lol9;</edXML>'
)
QUADRATIC = (
    f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "{"A" * 100_000}">]>'
    f'<edXML xmlns="{NS}">{"&a;" * 10_000}</edXML>'
)
INTERNAL_DTD = f'<?xml version="1.0"?><!DOCTYPE edXML [<!ELEMENT edXML ANY>]><edXML xmlns="{NS}"/>'


def xxe(secret_file: Path) -> str:
    """A document whose Subject is an external entity reading ``secret_file``."""
    return build_document(example_edoc()).decode().replace(
        "<?xml version='1.0' encoding='UTF-8'?>",
        f'<?xml version="1.0"?><!DOCTYPE edXML [<!ENTITY xxe SYSTEM "file://{secret_file}">]>',
    ).replace("<edXML:Subject>V/v", "<edXML:Subject>&xxe; V/v")


def reason_of(data: bytes) -> str:
    """Parse ``data``, which must fail with ``InvalidDocument``, and return its reason code."""
    with pytest.raises(InvalidDocument) as caught:
        parse(data)
    assert caught.value.problems, "every rejection names at least one problem"
    assert all(p.message for p in caught.value.problems)
    return caught.value.reason


def test_xxe_is_refused_and_leaks_nothing(tmp_path: Path) -> None:
    """An external entity pointing at a local file is refused; the file's content appears nowhere."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    data = xxe(secret).encode()
    with pytest.raises(InvalidDocument) as caught:
        parse(data)
    assert caught.value.reason == "DTD_FORBIDDEN"
    assert SECRET not in str(caught.value)


def test_xxe_in_utf16_is_refused(tmp_path: Path) -> None:
    """A DTD hidden by a UTF-16 encoding (the byte check cannot see it) is still refused after parsing."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    text = xxe(secret).replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
    reason = reason_of(text.encode("utf-16"))
    assert reason in {"DTD_FORBIDDEN", "MALFORMED", "ENTITY_FORBIDDEN"}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (BILLION_LAUGHS.encode(), "DTD_FORBIDDEN"),
        (QUADRATIC.encode(), "DTD_FORBIDDEN"),
        (INTERNAL_DTD.encode(), "DTD_FORBIDDEN"),
        (BILLION_LAUGHS.encode("utf-16"), "DTD_FORBIDDEN"),
    ],
    ids=["billion-laughs", "quadratic-blowup", "internal-dtd", "billion-laughs-utf16"],
)
def test_entity_expansion_refused_before_expansion(data: bytes, reason: str) -> None:
    """Entity bombs and any internal DTD are refused as DTDs, before any entity is expanded."""
    assert reason_of(data) == reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (build_document(example_edoc())[:-200], "MALFORMED"),
        (bytes(range(256)) * 8, "MALFORMED"),
        (b"", "EMPTY"),
        (b'<edXML xmlns="urn:not-edxml"/>', "WRONG_NAMESPACE"),
        (b"<edXML/>", "WRONG_NAMESPACE"),
        (b"<a>&undefined;</a>", "MALFORMED"),
    ],
    ids=["truncated", "binary", "empty", "wrong-namespace", "no-namespace", "undefined-entity"],
)
def test_broken_input_gives_a_clear_error(data: bytes, reason: str) -> None:
    """Truncated, binary, empty and wrong-namespace input raise InvalidDocument with a reason code."""
    assert reason_of(data) == reason


def test_size_cap_is_checked_before_parsing() -> None:
    """A document over the configured cap is refused without being parsed."""
    data = build_document(example_edoc(attachment_bytes=10_000))
    assert parse(data, max_bytes=len(data)).kind == "edoc"
    with pytest.raises(InvalidDocument) as caught:
        parse(data, max_bytes=len(data) - 1)
    assert caught.value.reason == "TOO_LARGE"


def test_cli_never_shows_a_traceback_or_the_secret(tmp_path: Path) -> None:
    """`lienthong validate --json` on hostile and broken files prints one verdict each, no traceback."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    files = {
        "xxe.xml": xxe(secret).encode(),
        "laughs.xml": BILLION_LAUGHS.encode(),
        "truncated.xml": build_document(example_edoc())[:100],
        "binary.xml": bytes(range(256)),
        "empty.xml": b"",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-m", "hub", "validate", "--json", *(str(tmp_path / n) for n in files)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert SECRET not in result.stderr + result.stdout
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(files)
    assert all(not line["valid"] and line["errors"] for line in lines)
