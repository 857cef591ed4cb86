"""The edXML structure, checked by element name rather than position, in both dialects.

Which elements may appear where, which are required, which repeat, which hold text only: the shape of
EDXML.md, with the field's additions (``ResponseForTask``, ``ApplicationType``, ``TraceHeaderList/Paper``,
``StaffInfo/DepartmentId`` and ``StaffId``). Siblings may come in any order, because DMS libraries order them
differently (EdXML102 writes ToPlaces last, ResponseFor's DocumentId before its PromulgationDate, ...). Values
(codes, OrganIds, dates, base64) are the reader's to check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lxml import etree

from schemas._names import DSIG_NS, EDXML_NS, LGSP_NS, Dialect
from schemas._reader import element_path
from schemas.errors import Problem

__all__ = ["structure_problems"]

_Element = etree._Element  # noqa: SLF001 - lxml's public element type has a private name
_OWN = "#own"  # stands for the dialect's own namespace in ``_Rule.namespaces``
_OWN_NAMESPACES = {Dialect.QCVN102: EDXML_NS, Dialect.LGSP: LGSP_NS}
_XSI = "{http://www.w3.org/2001/XMLSchema-instance}"  # xsi:schemaLocation and friends, as a schema validator allows


@dataclass(frozen=True, slots=True)
class _Rule:
    """One element: what it holds (``children``, or text when ``None``) and how often it appears."""

    children: Mapping[str, _Rule] | None = None
    required: bool = False
    repeats: bool = False
    checked: bool = True  # False: its content is another check's business (the signature, attachments)
    namespaces: frozenset[str] = frozenset({_OWN})
    attributes: frozenset[str] = frozenset()
    #: Derived, per dialect: the tag of each allowed child (its local part lower-cased in LGSP) → the child's name.
    tags: Mapping[Dialect, Mapping[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tags: dict[Dialect, dict[str, str]] = {dialect: {} for dialect in Dialect}
        for name, rule in (self.children or {}).items():
            for dialect, found in tags.items():
                local = name.lower() if dialect is Dialect.LGSP else name
                for namespace in (_OWN_NAMESPACES[dialect] if n == _OWN else n for n in rule.namespaces):
                    found[f"{{{namespace}}}{local}" if namespace else local] = name
        object.__setattr__(self, "tags", tags)


def _one(children: Mapping[str, _Rule] | None = None) -> _Rule:
    return _Rule(children, required=True)


def _opt(children: Mapping[str, _Rule] | None = None) -> _Rule:
    return _Rule(children)


def _many(children: Mapping[str, _Rule] | None = None, *, required: bool = False) -> _Rule:
    return _Rule(children, required=required, repeats=True)


def _texts(*names: str) -> dict[str, _Rule]:
    return dict.fromkeys(names, _opt())


_ORGANIZATION = {
    "OrganId": _one(),
    **_texts("OrganizationInCharge", "OrganName", "OrganAdd", "Email", "Telephone", "Fax", "Website"),
}
_RESPONSE_FOR = dict.fromkeys(("OrganId", "Code", "PromulgationDate", "DocumentId"), _one())
_STAFF = _texts("Department", "DepartmentId", "Staff", "StaffId", "Email", "Mobile")
_TRACE_HEADER = _many({"OrganId": _one(), "Timestamp": _one()})
_SIGNATURE = _Rule(checked=False, namespaces=frozenset({DSIG_NS}))
# Often written without a namespace; its content is read (and checked) by the reader.
_ATTACHMENTS = _Rule(checked=False, namespaces=frozenset({_OWN, ""}))

_DOCUMENT_MESSAGE = {
    "From": _one(_ORGANIZATION),
    "To": _many(_ORGANIZATION, required=True),
    "DocumentId": _one(),
    "Code": _one({"CodeNumber": _one(), "CodeNotation": _one()}),
    "PromulgationInfo": _one({"Place": _one(), "PromulgationDate": _one()}),
    "DocumentType": _one({"Type": _one(), "TypeDetail": _one(), "TypeName": _opt()}),
    "Subject": _one(),
    **_texts("Content", "DueDate", "SteeringType"),
    "SignerInfo": _opt(_texts("Competence", "Position", "FullName")),
    "ToPlaces": _opt({"Place": _many()}),
    "OtherInfo": _opt(
        {
            **_texts("Priority", "SphereOfPromulgation", "TyperNotation", "PromulgationAmount", "PageAmount"),
            **_texts("Direction"),
            "Appendixes": _opt({"Appendix": _many()}),
        }
    ),
    "ResponseFor": _many(_RESPONSE_FOR),
    # Written by the EdXML102 library; no public reference gives their content, and nothing here reads them.
    "ResponseForTask": _Rule(checked=False),
    "ApplicationType": _Rule(checked=False),
}
_BUSINESS = {
    **_texts("DocumentId", "BussinessDocReason", "Paper"),
    "BussinessDocType": _one(),
    "StaffInfo": _opt(_STAFF),
    "BussinessDocumentInfo": _opt(
        {
            **_texts("DocumentInfo", "DocumentReceiver"),
            "ReceiverList": _opt({"Receiver": _many({"ReceiverType": _one(), "OrganId": _one()})}),
        }
    ),
    "ReplacementInfoList": _opt(
        {"ReplacementInfo": _many({"DocumentId": _one(), "OrganIdList": _one({"OrganId": _many()})})}
    ),
}
_BODY = {
    "edXMLManifest": _Rule(
        {
            "Reference": _many(
                {"ContentId": _one(), **_texts("ContentType", "Description", "AttachmentName")},
            )
        },
        attributes=frozenset({"version"}),
    ),
    "AttachmentEncoded": _ATTACHMENTS,
}
_DOCUMENT = _one(
    {
        "edXMLHeader": _one(
            {
                "MessageHeader": _one(_DOCUMENT_MESSAGE),
                "TraceHeaderList": _opt({"TraceHeader": _TRACE_HEADER, "Bussiness": _opt(_BUSINESS), "Paper": _opt()}),
                "Signature": _SIGNATURE,
            }
        ),
        "edXMLBody": _opt(_BODY),
        "AttachmentEncoded": _ATTACHMENTS,
    }
)
_STATUS = _one(
    {
        "edXMLHeader": _one(
            {
                "MessageHeader": _one(
                    {
                        "ResponseFor": _one(_RESPONSE_FOR),
                        "From": _one(_ORGANIZATION),
                        "StatusCode": _one(),
                        "Description": _opt(),
                        "Timestamp": _one(),
                        "StaffInfo": _opt(_STAFF),
                    }
                ),
                "TraceHeaderList": _opt({"TraceHeader": _TRACE_HEADER}),
                "Signature": _SIGNATURE,
            }
        ),
    }
)
#: The root's rule by dialect and kind (status or not): LGSP's root is the envelope itself.
_ROOTS = {
    (Dialect.QCVN102, False): _one({"edXMLEnvelope": _DOCUMENT, "AttachmentEncoded": _ATTACHMENTS}),
    (Dialect.QCVN102, True): _one({"edXMLEnvelope": _STATUS}),
    (Dialect.LGSP, False): _DOCUMENT,
    (Dialect.LGSP, True): _STATUS,
}
#: The steps from the root to a status's StatusCode, by dialect.
_STATUS_STEPS = {
    dialect: tuple(_Rule({name: _opt()}) for name in path)
    for dialect, path in (
        (Dialect.QCVN102, ("edXMLEnvelope", "edXMLHeader", "MessageHeader", "StatusCode")),
        (Dialect.LGSP, ("edXMLHeader", "MessageHeader", "StatusCode")),
    )
}


def _fold(tag: str) -> str:
    """``tag`` with its local part lower-cased: LGSP documents are read case-insensitively."""
    head, brace, local = tag.rpartition("}")
    return head + brace + local.lower()


class _Checker:
    """Walks a tree against the rules, collecting every problem with its element path."""

    def __init__(self, dialect: Dialect) -> None:
        self.problems: list[Problem] = []
        self._dialect = dialect
        self._own = _OWN_NAMESPACES[dialect]

    def check(self, element: _Element, rule: _Rule) -> None:
        """Check ``element`` and, recursively, everything it holds."""
        if not rule.checked:
            return
        for name in map(str, element.attrib):
            if name not in rule.attributes and not name.startswith(_XSI):
                self._fail(element, f"attribute {name} is not allowed here")
        if rule.children is None:
            if len(element) and (child := next(element.iterchildren("*"), None)) is not None:
                self._fail(element, f"holds text only, but contains element {etree.QName(child).localname}")
            return
        self._children(element, rule, rule.children)

    def _children(self, element: _Element, rule: _Rule, rules: Mapping[str, _Rule]) -> None:
        seen: set[str] = set()
        unexpected: list[_Element] = []
        tags, fold = rule.tags[self._dialect], self._dialect is Dialect.LGSP
        text = element.text
        stray_text = bool(text and not text.isspace())
        for child in element:
            if (tail := child.tail) and not tail.isspace():
                stray_text = True
            tag = child.tag
            if isinstance(tag, str):  # not a comment or processing instruction (those may be anywhere)
                name = tags.get(_fold(tag) if fold else tag)
                if name is None:
                    unexpected.append(child)
                    continue
                if name in seen and not rules[name].repeats:
                    self._fail(child, f"{name} may appear only once")
                seen.add(name)
                self.check(child, rules[name])
        if stray_text:
            self._fail(element, "holds elements only, but contains text")
        missing = [name for name, child_rule in rules.items() if child_rule.required and name not in seen]
        for name in missing:
            self.problems.append(Problem(f"{element_path(element)}/{name}", "is required but missing"))
        if unexpected:
            self._unexpected(unexpected, missing or [n for n, r in rules.items() if r.repeats or n not in seen])

    def _unexpected(self, elements: list[_Element], room: list[str]) -> None:
        """Name each element that is not allowed, and what could come instead (in libxml2's words)."""
        hint = ""
        if room:
            hint = f" Expected is ( {room[0]} )." if len(room) == 1 else f" Expected is one of ( {', '.join(room)} )."
        for element in elements:
            qname = etree.QName(element)
            namespace = qname.namespace or ""
            where = "" if namespace == self._own else f" (namespace {namespace or 'none'}, not {self._own})"
            self._fail(element, f"Element '{qname.localname}'{where}: This element is not expected.{hint}")

    def _fail(self, element: _Element, message: str) -> None:
        self.problems.append(Problem(element_path(element), message))


def _is_status(root: _Element, dialect: Dialect) -> bool:
    """Whether the MessageHeader of ``root`` holds a StatusCode: then it is checked as a status message."""
    node, fold = root, dialect is Dialect.LGSP
    for step in _STATUS_STEPS[dialect]:
        tags = step.tags[dialect]
        found = next((c for c in node.iterchildren("*") if (_fold(c.tag) if fold else c.tag) in tags), None)
        if found is None:
            return False
        node = found
    return True


def structure_problems(root: _Element, dialect: Dialect) -> list[Problem]:
    """Every structural problem of ``root``: unknown, missing or repeated elements, stray text or attributes."""
    checker = _Checker(dialect)
    checker.check(root, _ROOTS[dialect, _is_status(root, dialect)])
    return checker.problems
