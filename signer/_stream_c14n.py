"""Canonical XML (C14N 1.0, exclusive or inclusive, without comments) of a document streamed as expat events.

Written for the one node set edXML signs: the whole document (``Reference URI=""``) minus the enveloped
``ds:Signature``. Then every element's ancestors are all in the node set, so a namespace declaration is rendered
exactly when its value differs from what the nearest ancestor rendered, and the rules fit on a page:

- exclusive: the prefixes an element visibly uses (its own, its attributes', and those of the InclusiveNamespaces
  PrefixList that are in scope); inclusive: every namespace in scope;
- ``xmlns=""`` only where an ancestor rendered a non-empty default namespace; the ``xml`` prefix never;
- declarations sorted by prefix, attributes by (namespace URI, local name); empty elements as start-end pairs;
- text escapes ``& < > CR``, attribute values ``& < " TAB LF CR``; PIs outside the root on their own line.

The differential tests compare it with libxml2's canonicaliser (``signer._xmldsig.canonical_document``) on every
vector and on generated namespace layouts. ``ReferenceDigest`` feeds it into a hash without knowing the
Reference's transforms in advance: it reads them from the Signature when the stream reaches it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from schemas._names import DSIG_NS
from schemas._stream import Attr
from signer._xmldsig import C14N, DIGEST_METHODS, ENVELOPED, EXC_C14N

__all__ = ["Canonicaliser", "DigestConfig", "ReferenceDigest"]

#: Text of the document held while waiting for the Signature that says how to digest it (then: a second pass).
DEFAULT_PENDING_CHARS = 4 * 1024 * 1024
_SIGNATURE = (DSIG_NS, "Signature")


def _text(data: str) -> str:
    if "&" in data or "<" in data or ">" in data or "\r" in data:
        data = data.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")
    return data


def _attr(value: str) -> str:
    for old, new in (("&", "&amp;"), ("<", "&lt;"), ('"', "&quot;"), ("\t", "&#x9;"), ("\n", "&#xA;"), ("\r", "&#xD;")):
        if old in value:
            value = value.replace(old, new)
    return value


class Canonicaliser:
    """An ``XmlEvents`` sink writing the canonical form to ``write``, ds:Signature subtrees left out."""

    def __init__(self, write: Callable[[bytes], object], *, exclusive: bool, prefixes: tuple[str, ...] = ()) -> None:
        self._write = write
        self._exclusive = exclusive
        self._inclusive_prefixes = frozenset(prefixes)
        # Per open element: (namespaces in scope, namespaces rendered by it or its ancestors), prefix "" = default.
        self._scopes: list[tuple[dict[str, str], dict[str, str]]] = [({}, {})]
        self._skipping = 0  # depth inside a removed ds:Signature
        self._depth = 0
        self._root_done = False

    def start(self, uri: str, local: str, prefix: str, attrs: list[Attr], decls: list[tuple[str, str]]) -> None:
        """Render a start tag with the namespace declarations C14N asks for."""
        if self._skipping or (uri, local) == _SIGNATURE:
            self._skipping += 1
            return
        self._depth += 1
        in_scope, rendered = self._scopes[-1]
        if decls:
            in_scope = {**in_scope, **dict(decls)}
        if self._exclusive:
            used = {prefix} | {a[2] for a in attrs if a[2]}
            used |= self._inclusive_prefixes & in_scope.keys()
            candidates = [(p, in_scope.get(p, "")) for p in used]
        else:
            candidates = list(in_scope.items())
        out: list[tuple[str, str]] = []
        for ns_prefix, ns_uri in candidates:
            if ns_prefix == "xml":
                continue
            # The default namespace counts as rendered empty until an ancestor renders it.
            before = rendered.get(ns_prefix, "") if not ns_prefix else rendered.get(ns_prefix)
            if before != ns_uri:
                out.append((ns_prefix, ns_uri))
        if out:
            rendered = {**rendered, **dict(out)}
            out.sort()
        self._scopes.append((in_scope, rendered))
        parts = ["<", f"{prefix}:{local}" if prefix else local]
        for ns_prefix, ns_uri in out:
            parts.append(f' xmlns:{ns_prefix}="{_attr(ns_uri)}"' if ns_prefix else f' xmlns="{_attr(ns_uri)}"')
        for attr_uri, attr_local, attr_prefix, value in sorted(attrs, key=lambda a: (a[0], a[1])):
            del attr_uri
            name = f"{attr_prefix}:{attr_local}" if attr_prefix else attr_local
            parts.append(f' {name}="{_attr(value)}"')
        parts.append(">")
        self._write("".join(parts).encode("utf-8"))

    def end(self, uri: str, local: str, prefix: str) -> None:
        """Render an end tag."""
        del uri
        if self._skipping:
            self._skipping -= 1
            return
        self._scopes.pop()
        self._depth -= 1
        if not self._depth:
            self._root_done = True
        self._write((f"</{prefix}:{local}>" if prefix else f"</{local}>").encode("utf-8"))

    def text(self, data: str) -> None:
        """Render character data inside the root element (whitespace around it is not in the node set)."""
        if self._depth and not self._skipping:
            self._write(_text(data).encode("utf-8"))

    def plain_text(self, data: bytes) -> None:
        """Render ASCII character data that holds nothing to escape (base64 read past expat)."""
        if self._depth and not self._skipping:
            self._write(data)

    def pi(self, target: str, data: str) -> None:
        """Render a processing instruction; outside the root element it takes a line of its own."""
        if self._skipping:
            return
        rendered = f"<?{target} {data}?>" if data else f"<?{target}?>"
        if self._depth:
            self._write(rendered.encode("utf-8"))
        elif self._root_done:
            self._write(("\n" + rendered).encode("utf-8"))
        else:
            self._write((rendered + "\n").encode("utf-8"))


@dataclass(frozen=True, slots=True)
class DigestConfig:
    """How the Reference digests the document: canonical form and hash."""

    exclusive: bool
    prefixes: tuple[str, ...]
    hash_name: str


class ReferenceDigest:
    """An ``XmlEvents`` sink computing the Reference digest of a streamed document.

    With ``config`` given (signing: always exc-c14n, SHA-256) it hashes from the first event. Without, it reads
    the transforms and digest method from the first ds:Signature as the stream passes it, holding the events
    before it (at most ``pending_chars`` characters of text); ``digest`` is ``None`` when the document outgrew
    that, or named something unsupported, and the caller then makes a second, digest-only pass.
    """

    def __init__(self, config: DigestConfig | None = None, *, pending_chars: int = DEFAULT_PENDING_CHARS) -> None:
        self.config = config
        self._hash: hashlib._Hash | None = None
        self._c14n: Canonicaliser | None = None
        self._pending: list[tuple[str, tuple[object, ...]]] | None = []
        self._pending_room = pending_chars
        self._signature_depth = 0  # inside the first ds:Signature: its depth from there, 1 at the Signature
        self._signature_seen = False
        self._path: list[str] = []
        self._transforms: list[str] = []
        self._prefix_list: str | None = None
        self._digest_method = ""
        if config is not None:
            self._begin(config)

    def _begin(self, config: DigestConfig) -> None:
        self.config = config
        self._hash = hashlib.new(config.hash_name)
        self._c14n = Canonicaliser(self._hash.update, exclusive=config.exclusive, prefixes=config.prefixes)

    @property
    def digest(self) -> bytes | None:
        """The digest, or ``None`` when it could not be computed in this pass."""
        return self._hash.digest() if self._hash is not None else None

    def _hold(self, kind: str, args: tuple[object, ...], chars: int) -> None:
        if self._pending is None:
            return
        self._pending_room -= chars
        if self._pending_room < 0:
            self._pending = None  # too much before the Signature: the caller makes a second pass
            return
        self._pending.append((kind, args))

    def start(self, uri: str, local: str, prefix: str, attrs: list[Attr], decls: list[tuple[str, str]]) -> None:
        """See ``XmlEvents.start``; also reads the first Signature's Reference."""
        if self._c14n is not None:
            self._c14n.start(uri, local, prefix, attrs, decls)
        else:
            self._hold("start", (uri, local, prefix, attrs, decls), sum(len(a[3]) for a in attrs) + 64)
        if self.config is not None and self._signature_seen:
            return
        if self._signature_depth or (uri, local) == _SIGNATURE:
            self._signature_depth += 1
            self._path.append(local if uri == DSIG_NS else f"{{{uri}}}{local}")
            self._read_reference(uri, local, attrs)

    def _read_reference(self, uri: str, local: str, attrs: list[Attr]) -> None:
        values = {a[1]: a[3] for a in attrs if not a[0]}
        path = self._path
        if path[1:] == ["SignedInfo", "Reference", "Transforms", "Transform"]:
            self._transforms.append(values.get("Algorithm", ""))
        elif path[1:4] == ["SignedInfo", "Reference", "Transforms"] and len(path) == 6:  # noqa: PLR2004
            if uri == EXC_C14N and local == "InclusiveNamespaces" and len(self._transforms) == 2:  # noqa: PLR2004
                self._prefix_list = values.get("PrefixList", "")
        elif path[1:] == ["SignedInfo", "Reference", "DigestMethod"]:
            self._digest_method = values.get("Algorithm", "")

    def end(self, uri: str, local: str, prefix: str) -> None:
        """See ``XmlEvents.end``."""
        if self._c14n is not None:
            self._c14n.end(uri, local, prefix)
        else:
            self._hold("end", (uri, local, prefix), 16)
        if self._signature_depth:
            self._signature_depth -= 1
            self._path.pop()
            if not self._signature_depth and not self._signature_seen:
                self._signature_seen = True
                if self.config is None:
                    self._configure()

    def _configure(self) -> None:
        """Choose the digest from the Signature just read, and replay what was held."""
        transforms, hash_name = self._transforms, DIGEST_METHODS.get(self._digest_method)
        if hash_name is None or not transforms or transforms[0] != ENVELOPED or len(transforms) > 2:  # noqa: PLR2004
            self._pending = None
            return
        if len(transforms) == 1 or transforms[1] == C14N:
            config = DigestConfig(exclusive=False, prefixes=(), hash_name=hash_name)
        elif transforms[1] == EXC_C14N:
            prefixes = tuple(p for p in (self._prefix_list or "").split() if p != "#default")
            config = DigestConfig(exclusive=True, prefixes=prefixes, hash_name=hash_name)
        else:
            self._pending = None
            return
        pending, self._pending = self._pending, None
        if pending is None:
            self.config = config  # what a second pass must use
            return
        self._begin(config)
        sink = self._c14n
        assert sink is not None
        for kind, args in pending:
            getattr(sink, kind)(*args)

    def text(self, data: str) -> None:
        """See ``XmlEvents.text``."""
        if self._c14n is not None:
            self._c14n.text(data)
        else:
            self._hold("text", (data,), len(data))

    def plain_text(self, data: bytes) -> None:
        """See ``XmlEvents.plain_text``."""
        if self._c14n is not None:
            self._c14n.plain_text(data)
        else:
            self._hold("plain_text", (data,), len(data))

    def pi(self, target: str, data: str) -> None:
        """See ``XmlEvents.pi``."""
        if self._c14n is not None:
            self._c14n.pi(target, data)
        else:
            self._hold("pi", (target, data), len(target) + len(data))
