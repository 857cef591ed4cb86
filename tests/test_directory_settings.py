"""The agency directory (hub.directory) and the hub's settings (hub.settings): loading, errors, precedence."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from hub.directory import Agency, Directory, DirectoryError, Route, load_directory
from hub.records import inbox_topic
from hub.settings import DEFAULT_MAX_DOCUMENT_BYTES, DEFAULT_PARTITIONS, HubSettings
from hub.trust import ConfigError
from signer.policy import RevocationPolicy

PIN_A = "a" * 64
PIN_B = "0123456789abcdef" * 4
PIN_B_COLONS_UPPER = ":".join(PIN_B[i : i + 2] for i in range(0, 64, 2)).upper()


def write(tmp_path: Path, text: str, name: str = "directory.yaml") -> Path:
    """Write ``text`` to a file in ``tmp_path``."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- directory --------------------------------------------------------------------------------------------------


class TestLoadDirectory:
    """The YAML directory file of DESIGN.md."""

    def test_loads_agencies_routes_and_pins(self, tmp_path):
        """Every entry becomes an Agency with its route and pins; route defaults to local."""
        path = write(
            tmp_path,
            f"""
agencies:
  - id: 000.00.00.H41
    name: UBND tỉnh Nghệ An
    route: local
    cert_spki_sha256: [{PIN_A}]
  - id: 000.00.00.G22
    name: Văn phòng Chính phủ
    route: axis
    cert_spki_sha256: [{PIN_A}, {PIN_B}]
  - id: 000.01.00.H41
""",
        )
        directory = load_directory(path)
        assert len(directory) == 3
        assert directory.get("000.00.00.H41") == Agency(
            "000.00.00.H41", "UBND tỉnh Nghệ An", Route.LOCAL, frozenset({PIN_A})
        )
        assert directory.get("000.00.00.G22").route is Route.AXIS
        assert directory.get("000.00.00.G22").cert_spki_sha256 == {PIN_A, PIN_B}
        assert directory.get("000.01.00.H41").route is Route.LOCAL
        assert directory.get("000.01.00.H41").cert_spki_sha256 == frozenset()
        assert directory.get("000.99.00.H99") is None
        assert directory.pins() == {
            "000.00.00.H41": frozenset({PIN_A}),
            "000.00.00.G22": frozenset({PIN_A, PIN_B}),
            "000.01.00.H41": frozenset(),
        }

    def test_pins_are_normalised(self, tmp_path):
        """Pins written upper-case with colons (as certificate viewers show them) are stored as lower-case hex."""
        path = write(
            tmp_path,
            f"agencies:\n  - id: A1\n    cert_spki_sha256: ['{PIN_B_COLONS_UPPER}', ' {PIN_A.upper()} ']\n",
        )
        assert load_directory(path).get("A1").cert_spki_sha256 == {PIN_B, PIN_A}

    def test_ids_are_stripped(self, tmp_path):
        """Surrounding spaces around an id are not part of the OrganId."""
        path = write(tmp_path, "agencies:\n  - id: ' 000.00.00.H41 '\n")
        assert load_directory(path).get("000.00.00.H41") is not None

    @pytest.mark.parametrize(
        ("entries", "names"),
        [
            ("  - name: no id\n", ["agencies[1]", "'id'"]),
            ("  - id: ''\n", ["agencies[1]", "'id'"]),
            ("  - id: 123\n", ["agencies[1]", "'id'"]),
            ("  - id: A1\n  - id: A2\n    route: national\n", ["agencies[2]", "A2", "'route'", "national"]),
            ("  - id: A1\n    cert_spki_sha256: abc\n", ["agencies[1]", "A1", "'cert_spki_sha256'"]),
            ("  - id: A1\n    cert_spki_sha256: [abc]\n", ["agencies[1]", "A1", "'abc'", "SHA-256"]),
            (f"  - id: A1\n    cert_spki_sha256: ['{PIN_A}0']\n", ["agencies[1]", "A1", "SHA-256"]),
            (f"  - id: A1\n    cert_spki_sha256: ['{'g' * 64}']\n", ["agencies[1]", "A1"]),
            ("  - just a string\n", ["agencies[1]", "not a mapping"]),
        ],
    )
    def test_errors_name_the_entry_and_field(self, tmp_path, entries, names):
        """A bad entry is refused with a DirectoryError naming the file, the entry and the field at fault."""
        path = write(tmp_path, "agencies:\n" + entries)
        with pytest.raises(DirectoryError) as caught:
            load_directory(path)
        message = str(caught.value)
        assert str(path) in message
        for name in names:
            assert name in message

    def test_duplicate_ids_are_refused(self, tmp_path):
        """The same OrganId listed twice is refused, naming the second entry and the id."""
        path = write(tmp_path, "agencies:\n  - id: A1\n  - id: A2\n  - id: ' A1'\n")
        with pytest.raises(DirectoryError, match=r"agencies\[3\].*A1.*twice"):
            load_directory(path)

    @pytest.mark.parametrize("text", ["", "agencies: 5\n", "- id: A1\n", "agencies:\n  id: A1\n", "{{{ not yaml"])
    def test_wrong_shape_is_refused(self, tmp_path, text):
        """A file that is not a mapping with a list 'agencies' is refused, naming the file."""
        path = write(tmp_path, text)
        with pytest.raises(DirectoryError, match=re.escape(str(path))):
            load_directory(path)

    def test_missing_file_is_refused(self, tmp_path):
        """A missing directory file is a DirectoryError (a ConfigError) naming it."""
        path = tmp_path / "absent.yaml"
        with pytest.raises(ConfigError, match=r"absent\.yaml"):
            load_directory(path)

    @pytest.mark.parametrize("organ_id", ["000.00.00.H41/x", "Sở Y tế", "a b", "a:b"])
    def test_ids_that_cannot_name_a_topic_are_refused_at_load(self, tmp_path, organ_id):
        """An id that cannot name its inbox topic is refused when the file is loaded, not when a document arrives."""
        path = write(tmp_path, f"agencies:\n  - id: '{organ_id}'\n")
        with pytest.raises(ValueError, match="cannot name a topic"):
            inbox_topic(organ_id)  # what routing a document to it would do
        with pytest.raises(DirectoryError, match=r"agencies\[1\]"):
            load_directory(path)


class TestDirectoryUpdates:
    """Applying a change builds a new directory (signed records are tested in test_signed_directory)."""

    def test_mapping_round_trip(self):
        """An agency's mapping (what a signed record carries) reads back as the same agency."""
        agency = Agency("000.00.00.G22", "Văn phòng Chính phủ", Route.AXIS, frozenset({PIN_A, PIN_B}))
        assert Agency.from_mapping(agency.to_mapping(), "test") == agency

    def test_with_agency_adds_or_replaces(self):
        """A new OrganId is added, a known one replaced, and the original directory is unchanged."""
        before = Directory([Agency("A1", "one", Route.LOCAL, frozenset({PIN_A}))])
        added = before.with_agency(Agency("A2", "two", Route.AXIS))
        assert {a.id for a in added} == {"A1", "A2"}
        assert before.get("A2") is None
        replaced = added.with_agency(Agency("A1", "new", Route.AXIS, frozenset({PIN_B})))
        assert replaced.get("A1") == Agency("A1", "new", Route.AXIS, frozenset({PIN_B}))
        assert replaced.pins() == {"A1": frozenset({PIN_B}), "A2": frozenset()}

    def test_without_removes(self):
        """Removing an agency drops it; removing an unknown one is harmless."""
        directory = Directory([Agency("A1", "", Route.LOCAL), Agency("A2", "", Route.LOCAL)])
        assert {a.id for a in directory.without("A1")} == {"A2"}
        assert len(directory.without("A9")) == 2


# --- settings ---------------------------------------------------------------------------------------------------


class TestSettings:
    """HubSettings.load: overrides > environment > file > defaults, every value checked."""

    def test_defaults(self):
        """With no file, no environment and no overrides, the named defaults apply."""
        settings = HubSettings.load(env={})
        assert settings == HubSettings()
        assert settings.partitions == DEFAULT_PARTITIONS
        assert settings.max_document_bytes == DEFAULT_MAX_DOCUMENT_BYTES
        assert settings.revocation is RevocationPolicy.REQUIRE

    def test_precedence_overrides_env_file_defaults(self, tmp_path):
        """A setting comes from the overrides, else the environment, else the file, else its default."""
        path = write(tmp_path, "http_port: 1111\npartitions: 7\ns3_bucket: from-file\n", "hub.yaml")
        env = {"LIENTHONG_HTTP_PORT": "2222", "LIENTHONG_PARTITIONS": "8"}
        settings = HubSettings.load(path, env, http_port=3333)
        assert settings.http_port == 3333  # override beats env and file
        assert settings.partitions == 8  # env beats file
        assert settings.s3_bucket == "from-file"  # file beats default
        assert settings.kafka_bootstrap == HubSettings().kafka_bootstrap  # default

    def test_none_overrides_are_ignored(self):
        """An override of None (a command-line option not given) leaves the lower layers in force."""
        settings = HubSettings.load(env={"LIENTHONG_PARTITIONS": "6"}, partitions=None)
        assert settings.partitions == 6

    def test_environment_values_are_converted(self, tmp_path):
        """Environment text becomes each field's type: ints, floats, flags, paths, path lists, policies."""
        env = {
            "LIENTHONG_DATA_DIR": str(tmp_path / "d"),
            "LIENTHONG_MAX_DOCUMENT_BYTES": "1024",
            "LIENTHONG_SEAL_INTERVAL_SECONDS": "0.5",
            "LIENTHONG_OCSP": "yes",
            "LIENTHONG_TRUST": os.pathsep.join(["/a/root.pem", "/b/roots"]),
            "LIENTHONG_REVOCATION": "if-available",
            "LIENTHONG_DIRECTORY_FILE": "dir.yaml",
            "LIENTHONG_KAFKA_CA_FILE": "",
            "LIENTHONG_KAFKA_EXTERNAL": "true",
        }
        settings = HubSettings.load(env=env)
        assert settings.data_dir == tmp_path / "d"
        assert settings.max_document_bytes == 1024
        assert settings.seal_interval_seconds == 0.5
        assert settings.ocsp is True
        assert settings.trust == (Path("/a/root.pem"), Path("/b/roots"))
        assert settings.revocation is RevocationPolicy.IF_AVAILABLE
        assert settings.directory_file == Path("dir.yaml")
        assert settings.kafka_ca_file is None
        assert settings.kafka_external is True

    def test_every_setting_is_read_by_the_hub(self):
        """Each HubSettings field is read somewhere (beyond its own declaration): no setting that nothing uses."""
        root = Path(__file__).parents[1]
        files = [p for folder in ("hub", "adapters", "storage") for p in (root / folder).rglob("*.py")]
        sources = "".join(p.read_text(encoding="utf-8") for p in files)
        unread = [f.name for f in dataclasses.fields(HubSettings) if f".{f.name}" not in sources]
        assert unread == []

    def test_secrets_never_appear_in_the_settings_repr(self):
        """repr() of the settings and of the Kafka connection hides the password, the S3 secret and the ledger key."""
        settings = HubSettings(kafka_password="kafka-secret-1", s3_secret_key="s3-secret-2", ledger_key="ledger-3")
        for text in (repr(settings), repr(settings.kafka), str(settings)):
            assert "kafka-secret-1" not in text
            assert "s3-secret-2" not in text
            assert "ledger-3" not in text

    @pytest.mark.parametrize(("text", "expected"), [("false", False), ("0", False), ("no", False), ("TRUE", True)])
    def test_flags(self, text, expected):
        """Flag settings read the usual words for true and false."""
        assert HubSettings.load(env={"LIENTHONG_OCSP": text}).ocsp is expected

    def test_file_lists_become_tuples_of_paths(self, tmp_path):
        """A YAML list of paths becomes a tuple of Paths."""
        path = write(tmp_path, "crls: [a.pem, b.pem]\n", "hub.yaml")
        assert HubSettings.load(path, {}).crls == (Path("a.pem"), Path("b.pem"))

    def test_unknown_setting_is_refused_listing_the_known_ones(self, tmp_path):
        """An unknown name in the file is refused; the message names it and lists every known setting."""
        path = write(tmp_path, "partitons: 4\n", "hub.yaml")
        with pytest.raises(ConfigError) as caught:
            HubSettings.load(path, {})
        message = str(caught.value)
        assert "partitons" in message
        for known in ("partitions", "data_dir", "max_document_bytes", "kafka_bootstrap"):
            assert known in message

    def test_unknown_override_is_refused(self):
        """An unknown keyword override is refused too."""
        with pytest.raises(ConfigError, match="bogus"):
            HubSettings.load(env={}, bogus=1)

    def test_unrelated_environment_is_ignored(self):
        """Only LIENTHONG_<FIELD> variables are read; other LIENTHONG_ names are not settings."""
        assert HubSettings.load(env={"LIENTHONG_NOT_A_SETTING": "x", "HOME": "/root"}) == HubSettings()

    @pytest.mark.parametrize(
        ("source", "name", "value"),
        [
            ("env", "partitions", "many"),
            ("env", "http_port", ""),
            ("env", "seal_interval_seconds", "soon"),
            ("env", "revocation", "sometimes"),
            ("file", "max_document_bytes", "[1, 2]"),
            ("file", "partitions", "2.5"),
            ("file", "http_port", "true"),
        ],
    )
    def test_bad_values_are_refused_naming_the_setting(self, tmp_path, source, name, value):
        """A value that is not of the setting's type is a ConfigError naming the setting (no silent truncation)."""
        if source == "env":
            args = (None, {f"LIENTHONG_{name.upper()}": value})
        else:
            args = (write(tmp_path, f"{name}: {value}\n", "hub.yaml"), {})
        with pytest.raises(ConfigError, match=f"setting {name}"):
            HubSettings.load(*args)

    @pytest.mark.parametrize("text", ["- a list\n", "just text\n", "a: [unclosed\n"])
    def test_settings_file_must_be_a_mapping(self, tmp_path, text):
        """A settings file that is not a YAML mapping is refused, naming the file."""
        path = write(tmp_path, text, "hub.yaml")
        with pytest.raises(ConfigError, match=r"hub\.yaml"):
            HubSettings.load(path, {})

    def test_missing_settings_file_is_refused(self, tmp_path):
        """A settings file that cannot be read is a ConfigError naming it."""
        with pytest.raises(ConfigError, match=r"nowhere\.yaml"):
            HubSettings.load(tmp_path / "nowhere.yaml", {})

    def test_settings_are_frozen(self):
        """The settings object cannot be changed after start-up."""
        settings = HubSettings.load(env={})
        with pytest.raises(AttributeError):
            settings.partitions = 9

    def test_seal_paths_are_in_the_data_dir(self, tmp_path):
        """The hub's seal key and certificate live in the data folder."""
        settings = HubSettings.load(env={}, data_dir=tmp_path)
        assert settings.seal_key_path == tmp_path / "hub-key.pem"
        assert settings.seal_cert_path == tmp_path / "hub-cert.pem"
