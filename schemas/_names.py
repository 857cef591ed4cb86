"""Namespaces and element names of the two edXML dialects and of XMLDSig."""

from __future__ import annotations

import enum

__all__ = ["DSIG_NS", "EDXML_NS", "LGSP_NS", "Dialect"]

EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
LGSP_NS = "http://www.go.vn/eDoc"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"


class Dialect(enum.StrEnum):
    """Which dialect a document was written in. lienthong reads both and always writes QCVN 102."""

    QCVN102 = "qcvn102"
    LGSP = "lgsp"
