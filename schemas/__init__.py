"""edXML (QCVN 102:2016) for lienthong: safe parsing, the typed model, checks and a builder. No I/O.

>>> doc = parse(data)          # ParsedDocument, or InvalidDocument naming each problem's element path
>>> data = build_document(edoc) # QCVN 102 bytes, ready to sign
"""

from schemas._builder import build_document, build_status
from schemas._checks import document_id_for
from schemas._names import DSIG_NS, EDXML_NS, LGSP_NS, Dialect
from schemas._parse import parse, priority_of
from schemas._safe import DEFAULT_MAX_BYTES, parse_xml
from schemas.errors import DocumentRejected, HubError, InvalidDocument, Problem
from schemas.model import (
    Appendix,
    Attachment,
    Business,
    Code,
    DocumentType,
    Edoc,
    ManifestReference,
    Organization,
    OtherInfo,
    ParsedDocument,
    PromulgationInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    Signatory,
    SignatureSummary,
    StaffInfo,
    StatusMessage,
    TraceHeader,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DSIG_NS",
    "EDXML_NS",
    "LGSP_NS",
    "Appendix",
    "Attachment",
    "Business",
    "Code",
    "Dialect",
    "DocumentRejected",
    "DocumentType",
    "Edoc",
    "HubError",
    "InvalidDocument",
    "ManifestReference",
    "Organization",
    "OtherInfo",
    "ParsedDocument",
    "Problem",
    "PromulgationInfo",
    "Receiver",
    "ReplacementInfo",
    "ResponseFor",
    "Signatory",
    "SignatureSummary",
    "StaffInfo",
    "StatusMessage",
    "TraceHeader",
    "build_document",
    "build_status",
    "document_id_for",
    "parse",
    "parse_xml",
    "priority_of",
]
