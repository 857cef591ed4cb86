"""Who may do what on the hub's Kafka: the principals, their ACLs, and their SCRAM credentials.

Principals (SASL/SCRAM-SHA-512 users):

- the hub's workers (``kafka_username``, a super user on the embedded broker): every ``lienthong.*`` topic, their
  consumer group, and the cluster operations that creating topics and users need;
- the administrator (``lienthong-admin``): reads every ``lienthong.*`` topic (operators' tools), writes only
  ``lienthong.directory``, consumer groups ``admin.*``;
- the VXP facade (``lienthong-vxp``): writes outboxes on behalf of the agencies it serves, reads what it delivers,
  groups ``vxp.*``;
- the national-axis connector (``lienthong-axis``): reads ``lienthong.axis.outbound``, writes only
  ``lienthong.axis.inbound`` (what it pulls from the axis: the intake takes the sender from the document and refuses
  a local one), the senders' status topics (its "forwarded to the national axis" statuses) and ``lienthong.ledger``
  (its send events, which still need the workers' MAC), groups ``axis.*``;
- one per local agency (``agency-<OrganId>``): writes only ``lienthong.outbox.<OrganId>``, reads only its
  ``lienthong.inbox.<OrganId>`` and ``lienthong.status.<OrganId>``, consumer groups ``dms.<OrganId>.*``.

Nothing else is allowed (``allow.everyone.if.no.acl.found=false``). ``access_plan`` lists the grants for a
directory; ``apply_plan`` creates them through the Admin API (creating an ACL that exists is a no-op), which is what
``lienthong up`` does at every start and ``lienthong acl plan --apply`` does on an operator's own cluster.
Passwords are generated here and given once; the broker keeps only salted SCRAM hashes of them.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import yaml

from adapters.kafka import DEFAULT_SASL_MECHANISM, KafkaConnection
from hub.directory import Agency, Directory, Route
from hub.records import (
    AXIS_INBOUND,
    AXIS_OUTBOUND,
    DEADLETTER,
    DIRECTORY,
    LEDGER,
    WORK_BULK,
    WORK_RETRY,
    WORK_URGENT,
    inbox_topic,
    outbox_topic,
    status_topic,
)
from hub.settings import HubSettings, write_private
from schemas.errors import HubError

__all__ = [
    "ADMIN_USER",
    "AXIS_USER",
    "VXP_USER",
    "AccessError",
    "Grant",
    "access_plan",
    "agency_prefix",
    "agency_topics",
    "agency_user",
    "apply_plan",
    "dms_group_prefix",
    "issue_credentials",
    "plan_users",
    "provision_agency",
    "read_directory",
    "set_password",
    "topic_plan",
    "user_exists",
]

ADMIN_USER: Final = "lienthong-admin"
VXP_USER: Final = "lienthong-vxp"
AXIS_USER: Final = "lienthong-axis"
_AGENCY_PREFIX: Final = "agency-"
_HUB_TOPICS: Final = "lienthong."
_PASSWORD_BYTES: Final = 32  # 256 bits, URL-safe base64 text
_SCRAM_ITERATIONS: Final = 8192
#: The VXP facade's shared secrets by systemId (the facade's HMAC needs them in clear), in ``DATA``, 0600.
VXP_SECRETS_FILE: Final = "vxp-secrets.yaml"
_CLUSTER_OPERATIONS: Final = ("CREATE", "DESCRIBE", "ALTER", "DESCRIBE_CONFIGS")  # topics, users, in-doubt look-ups


class AccessError(HubError):
    """The broker refused to create a user or an ACL (the message says which and why)."""


def agency_user(organ_id: str) -> str:
    """The Kafka username of agency ``organ_id`` (prefixed: an OrganId can never name a hub principal)."""
    return f"{_AGENCY_PREFIX}{organ_id}"


def agency_prefix() -> str:
    """What every agency's username starts with."""
    return _AGENCY_PREFIX


def plan_users(directory: Directory, *, hub_user: str) -> list[str]:
    """The SCRAM users a directory's plan names: the hub's, administrator, facade, connector, local agencies."""
    agencies = [agency_user(a.id) for a in directory if a.route is Route.LOCAL]
    return [hub_user, ADMIN_USER, VXP_USER, AXIS_USER, *sorted(agencies)]


def dms_group_prefix(organ_id: str) -> str:
    """The consumer groups agency ``organ_id`` may use: ``dms.<OrganId>.*``."""
    return f"dms.{organ_id}."


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL: ``principal`` may ``operation`` on ``resource`` named ``name`` (literally or as a prefix)."""

    principal: str  # a SCRAM username
    resource: str  # TOPIC, GROUP or CLUSTER
    name: str
    operation: str  # READ, WRITE, DESCRIBE, CREATE, ALTER, ALL, ...
    prefixed: bool = False

    def __str__(self) -> str:
        pattern = "PREFIXED" if self.prefixed else "LITERAL"
        return f"User:{self.principal} ALLOW {self.operation} {self.resource} {pattern} {self.name}"

    def acl(self) -> Any:
        """The kafka-python ``ACL`` for the Admin API."""
        from kafka.admin import (  # noqa: PLC0415 - kafka-python's admin module is only needed here
            ACL,
            ACLOperation,
            ACLPermissionType,
            ACLResourcePatternType,
            ResourcePattern,
            ResourceType,
        )

        pattern = ACLResourcePatternType.PREFIXED if self.prefixed else ACLResourcePatternType.LITERAL
        resource = ResourcePattern(ResourceType[self.resource], self.name, pattern)
        return ACL(f"User:{self.principal}", "*", ACLOperation[self.operation], ACLPermissionType.ALLOW, resource)


def _reads(principal: str, topic: str, *, prefixed: bool = False) -> list[Grant]:
    return [Grant(principal, "TOPIC", topic, op, prefixed) for op in ("READ", "DESCRIBE")]


def _writes(principal: str, topic: str, *, prefixed: bool = False) -> list[Grant]:
    return [Grant(principal, "TOPIC", topic, op, prefixed) for op in ("WRITE", "DESCRIBE")]


def _group(principal: str, prefix: str) -> Grant:
    return Grant(principal, "GROUP", prefix, "READ", prefixed=True)


def access_plan(directory: Directory, *, hub_user: str, consumer_group: str) -> list[Grant]:
    """Every grant the hub's principals need for ``directory``, sorted (the same input gives the same plan)."""
    grants = [
        Grant(hub_user, "TOPIC", _HUB_TOPICS, "ALL", prefixed=True),
        Grant(hub_user, "GROUP", consumer_group, "ALL"),
        *(Grant(hub_user, "CLUSTER", "kafka-cluster", op) for op in _CLUSTER_OPERATIONS),
        *_reads(ADMIN_USER, _HUB_TOPICS, prefixed=True),
        *_writes(ADMIN_USER, DIRECTORY),
        _group(ADMIN_USER, "admin."),
        *_writes(VXP_USER, "lienthong.outbox.", prefixed=True),
        *_reads(VXP_USER, "lienthong.inbox.", prefixed=True),
        *_reads(VXP_USER, "lienthong.status.", prefixed=True),
        *_reads(VXP_USER, DIRECTORY),
        _group(VXP_USER, "vxp."),
        *_reads(AXIS_USER, AXIS_OUTBOUND),
        *_writes(AXIS_USER, AXIS_INBOUND),
        *_writes(AXIS_USER, "lienthong.status.", prefixed=True),
        *_writes(AXIS_USER, LEDGER),
        *_reads(AXIS_USER, DIRECTORY),
        _group(AXIS_USER, "axis."),
    ]
    for agency in directory:
        if agency.route is Route.AXIS:  # no login here: what it sends comes in through the connector
            continue
        user = agency_user(agency.id)
        grants += _writes(user, outbox_topic(agency.id))
        grants += _reads(user, inbox_topic(agency.id))
        grants += _reads(user, status_topic(agency.id))
        grants.append(_group(user, dms_group_prefix(agency.id)))
    return sorted(set(grants))


def _admin(connection: KafkaConnection) -> Any:
    from hub.embedded.kafka import admin_client  # noqa: PLC0415 - kafka-python's admin only when asked

    try:
        return admin_client(connection)
    except Exception as exc:  # kafka-python raises its own tree; one clear line for the caller
        raise AccessError(f"cannot reach the broker at {connection.bootstrap} as {connection.username}: {exc}") from exc


def apply_plan(connection: KafkaConnection, grants: Sequence[Grant]) -> int:
    """Create every grant (those that exist stay as they are); the number of grants. Raises ``AccessError``."""
    admin = _admin(connection)
    try:
        result = admin.create_acls([g.acl() for g in grants])
    finally:
        admin.close()
    failed = result.get("failed", []) if isinstance(result, dict) else []
    if failed:  # kafka-python lists the error classes only
        raise AccessError(f"the broker refused {len(failed)} of {len(grants)} ACLs: {failed[0].__name__}")
    return len(grants)


def user_exists(connection: KafkaConnection, user: str) -> bool:
    """Whether ``user`` has a SCRAM credential on the broker."""
    admin = _admin(connection)
    try:
        described = admin.describe_user_scram_credentials([user])
    except Exception as exc:  # kafka-python raises its own tree; an unknown user is an entry with an error, not this
        raise AccessError(f"cannot read the SCRAM users of {connection.bootstrap}: {exc}") from exc
    finally:
        admin.close()
    entry = described.get(user) or {}
    return not entry.get("error") and bool(entry.get("credential_infos"))


def set_password(
    connection: KafkaConnection, users: Iterable[str], *, given: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Give each of ``users`` a new random SCRAM-SHA-512 password (creating the user); user → password.

    The broker stores only the salted hash; the password exists in the returned mapping alone. ``given`` sets a
    kept password instead of a new one (a principal of the hub's own whose password lives in ``DATA``).
    """
    from kafka.admin import ScramMechanism, UserScramCredentialUpsertion  # noqa: PLC0415

    passwords = {user: (given or {}).get(user) or secrets.token_urlsafe(_PASSWORD_BYTES) for user in users}
    upserts = [
        UserScramCredentialUpsertion(user, ScramMechanism.SCRAM_SHA_512, password, iterations=_SCRAM_ITERATIONS)
        for user, password in passwords.items()
    ]
    admin = _admin(connection)
    try:
        errors = admin.alter_user_scram_credentials(upserts)
    finally:
        admin.close()
    refused = {user: error for user, error in (errors or {}).items() if error}
    if refused:
        raise AccessError(f"the broker refused the credentials of {', '.join(sorted(refused))}: {refused}")
    return passwords


def agency_topics(agency: Agency, partitions: int) -> dict[str, int]:
    """An agency's topics with their partition counts: its outbox and status topic, and its inbox if local."""
    topics = {outbox_topic(agency.id): partitions, status_topic(agency.id): 1}
    if agency.route is Route.LOCAL:
        topics[inbox_topic(agency.id)] = 1
    return topics


def topic_plan(settings: HubSettings, directory: Directory) -> tuple[dict[str, int], set[str]]:
    """Every topic the hub uses with its partition count, and which are compacted."""
    topics = {
        WORK_URGENT: settings.partitions,
        WORK_BULK: settings.partitions,
        WORK_RETRY: settings.partitions,  # held documents (hub.hold): hub-only, like every lienthong.work.* topic
        AXIS_OUTBOUND: 1,
        AXIS_INBOUND: settings.partitions,
        DEADLETTER: 1,
        LEDGER: 1,
        DIRECTORY: 1,
    }
    for agency in directory:
        topics |= agency_topics(agency, settings.partitions)
    return topics, {DIRECTORY}


def create_hub_topics(settings: HubSettings, topics: Mapping[str, int], *, compacted: Collection[str] = ()) -> None:
    """Create ``topics`` (or add partitions) with the replication of the settings' cluster.

    That is 1 on the embedded single broker, ``kafka_replication`` on an external cluster.
    """
    from hub.embedded.kafka import create_topics  # noqa: PLC0415 - kafka-python's admin only when asked

    replication = settings.kafka_replication if settings.kafka_external else 1
    create_topics(settings.kafka, topics, compacted=compacted, replication=replication)


def provision_agency(settings: HubSettings, agency: Agency) -> None:
    """Create a new agency's topics and ACLs (before its directory record, so that it can connect at once)."""
    create_hub_topics(settings, agency_topics(agency, settings.partitions))
    grants = access_plan(Directory([agency]), hub_user=settings.kafka_username, consumer_group=settings.consumer_group)
    apply_plan(settings.kafka, grants)


def read_directory(settings: HubSettings) -> Directory:
    """The directory as the workers see it (its verified records on ``lienthong.directory``)."""
    from hub.signed_directory import current_directory  # noqa: PLC0415 - it needs the administrator certificates

    return current_directory(settings).directory


def _vxp_secret(settings: HubSettings, system_id: str, *, rotate: bool) -> str:
    """The VXP facade's shared secret for ``system_id`` (HMAC needs it in clear: kept in ``DATA``, 0600)."""
    path = settings.data_dir / VXP_SECRETS_FILE
    kept: dict[str, str] = yaml.safe_load(path.read_text(encoding="utf-8")) or {} if path.is_file() else {}
    if rotate or not kept.get(system_id):
        kept[system_id] = secrets.token_urlsafe(_PASSWORD_BYTES)
        write_private(path, yaml.safe_dump(kept))
    return kept[system_id]


def issue_credentials(settings: HubSettings, organ_id: str | None, *, rotate: bool = False) -> dict[str, Any]:
    """Credentials for agency ``organ_id`` (None: the administrator), as the JSON object of DESIGN.md.

    The Kafka password is made here and exists only in the result (the broker keeps a salted hash): asking again
    without ``rotate`` is refused, ``rotate`` replaces it (the old one stops working at once).
    """
    connection = settings.kafka
    user = ADMIN_USER if organ_id is None else agency_user(organ_id)
    if organ_id is not None:
        agency = read_directory(settings).get(organ_id)
        if agency is None:
            raise AccessError(f"{organ_id} is not in the hub's directory: add it first (lienthong agency add)")
        if agency.route is not Route.LOCAL:
            raise AccessError(f"{organ_id} is served through the national axis: it has no Kafka credentials here")
    if not rotate and user_exists(connection, user):
        who = "the administrator" if organ_id is None else organ_id
        raise AccessError(f"credentials for {who} were already issued; --rotate issues new ones (the old stop working)")
    password = set_password(connection, [user])[user]
    client = KafkaConnection(
        connection.bootstrap,
        user,
        password,
        mechanism=DEFAULT_SASL_MECHANISM,
        tls=connection.tls,
        ca_file=connection.ca_file,
    )
    issued: dict[str, Any] = {
        "organ_id": organ_id,
        "kafka": client.librdkafka(),
        "kafka_python": client.kafka_python(),
        "java": client.java_properties(),
    }
    vxp_id = ADMIN_USER if organ_id is None else organ_id  # the administrator's systemId may change agencies
    issued["vxp"] = {
        "endpoint": f"http://127.0.0.1:{settings.vxp_port}/vxp",
        "system_id": vxp_id,
        "secret": _vxp_secret(settings, vxp_id, rotate=rotate),
    }
    if organ_id is not None:
        issued["topics"] = {
            "outbox": outbox_topic(organ_id),
            "inbox": inbox_topic(organ_id),
            "status": status_topic(organ_id),
            "consumer_groups": dms_group_prefix(organ_id) + "*",
        }
    return issued
