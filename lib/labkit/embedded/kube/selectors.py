"""Label and field selectors, parsed and matched as the API server does.

Label selectors support every operator of ``kubectl -l``: ``key``, ``!key``, ``key=v``,
``key==v``, ``key!=v``, ``key in (a,b)``, ``key notin (a,b)``, ``key>1``, ``key<1``; and the
structured form of objects (``matchLabels`` / ``matchExpressions``). Field selectors support
``=``, ``==`` and ``!=`` on the fields each kind allows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from labkit.errors import Invalid

_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

_QUALIFIED_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def _bad_request(message: str) -> Invalid:
    err = Invalid(message, "fix the selector; see `kubectl get --help` for the syntax", status=400, reason="BadRequest")
    err.details = {}  # type: ignore[attr-defined]
    return err


def label_key_errors(key: str) -> list[str]:
    """What is wrong with a label or annotation key (empty when it is valid)."""
    errors: list[str] = []
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            errors.append("prefix part must be non-empty")
        elif len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix):
            errors.append(
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                "'-' or '.', and must start and end with an alphanumeric character"
            )
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    elif not _NAME_RE.match(name):
        errors.append(_QUALIFIED_NAME_MSG)
    return errors


def label_value_errors(value: str) -> list[str]:
    """What is wrong with a label value (empty when it is valid)."""
    if len(value) > 63:
        return ["must be no more than 63 characters"]
    if not _VALUE_RE.match(value):
        return [_LABEL_VALUE_MSG]
    return []


@dataclass(frozen=True)
class Requirement:
    """One requirement of a label selector.

    Attributes:
        key: label key.
        op: one of ``=``, ``!=``, ``in``, ``notin``, ``exists``, ``!``, ``gt``, ``lt``.
        values: the values compared with (sorted), empty for ``exists`` and ``!``.
    """

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement."""
        op = self.op
        if op in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        if op in ("!=", "notin"):
            return self.key not in labels or labels[self.key] not in self.values
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        if op in ("gt", "lt"):
            if self.key not in labels:
                return False
            try:
                have = int(labels[self.key])
            except ValueError:
                return False
            want = int(self.values[0])
            return have > want if op == "gt" else have < want
        return False

    def __str__(self) -> str:
        op = self.op
        if op == "exists":
            return self.key
        if op == "!":
            return f"!{self.key}"
        if op in ("in", "notin"):
            return f"{self.key} {op} ({','.join(self.values)})"
        if op == "gt":
            return f"{self.key}>{self.values[0]}"
        if op == "lt":
            return f"{self.key}<{self.values[0]}"
        return f"{self.key}{op}{self.values[0]}"


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with these labels is selected."""
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        """True when this selector selects everything."""
        return not self.requirements and not self.nothing

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = LabelSelector()
NOTHING = LabelSelector(nothing=True)


class _Lexer:
    _TOKEN_RE = re.compile(r"\s*(!=|==|=|!|\(|\)|,|>|<|[^\s!=(),<>]+)")

    def __init__(self, text: str) -> None:
        self.tokens: list[str] = []
        pos = 0
        while pos < len(text):
            m = self._TOKEN_RE.match(text, pos)
            if m is None or m.end() == pos:
                break
            if m.group(1):
                self.tokens.append(m.group(1))
            pos = m.end()
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self) -> str | None:
        tok = self.peek()
        self.pos += 1
        return tok


_OPERATOR_TOKENS = {"=", "==", "!=", "in", "notin", ">", "<"}
_SPECIAL = {"!=", "==", "=", "!", "(", ")", ",", ">", "<"}


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse a label selector string (``app=web,tier in (a,b),!canary``).

    Raises:
        Invalid: 400 BadRequest naming what is wrong, as the API server answers.
    """
    if text is None or not text.strip():
        return EVERYTHING
    lex = _Lexer(text)
    reqs: list[Requirement] = []
    while True:
        tok = lex.next()
        if tok is None:
            raise _bad_request(f"unable to parse requirement: found '', expected: identifier in {text!r}")
        negate = tok == "!"
        if negate:
            tok = lex.next()
        if tok is None or tok in _SPECIAL:
            raise _bad_request(
                f"unable to parse requirement: found '{tok or ''}', expected: identifier in selector {text!r}"
            )
        key = tok
        if errs := label_key_errors(key):
            raise _bad_request(f"unable to parse requirement: key: Invalid value: {key!r}: {errs[0]}")
        after = lex.peek()
        if negate:
            if after not in (None, ","):
                raise _bad_request(f"unable to parse requirement: found '{after}', expected: ',' or 'end of string'")
            reqs.append(Requirement(key, "!"))
        elif after in (None, ","):
            reqs.append(Requirement(key, "exists"))
        elif after in ("=", "==", "!=", ">", "<"):
            lex.next()
            value = lex.peek()
            if value is None or value in _SPECIAL:
                value = ""
            else:
                lex.next()
            if after in (">", "<"):
                try:
                    int(value)
                except ValueError:
                    raise _bad_request(
                        f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer: "
                        f"{value!r}"
                    ) from None
                reqs.append(Requirement(key, "gt" if after == ">" else "lt", (value,)))
            else:
                _check_value(value)
                reqs.append(Requirement(key, "!=" if after == "!=" else "=", (value,)))
        elif after in ("in", "notin"):
            lex.next()
            if lex.next() != "(":
                raise _bad_request(f"unable to parse requirement: found '{lex.peek() or ''}', expected: '('")
            values: list[str] = []
            while True:
                v = lex.next()
                if v == ")" and not values:
                    break
                if v is None:
                    raise _bad_request("unable to parse requirement: found '', expected: ')'")
                if v in (",", ")"):
                    values.append("")
                    if v == ")":
                        break
                    continue
                _check_value(v)
                values.append(v)
                sep = lex.next()
                if sep == ")":
                    break
                if sep != ",":
                    raise _bad_request(f"unable to parse requirement: found '{sep or ''}', expected: ',' or ')'")
            if not values:
                raise _bad_request(
                    f"unable to parse requirement: values: Invalid value: for 'in', 'notin' "
                    f"operators, values set can't be empty (key {key!r})"
                )
            reqs.append(Requirement(key, after, tuple(sorted(set(values)))))
        else:
            raise _bad_request(f"unable to parse requirement: found '{after}', expected: in, notin, =, ==, !=, gt, lt")
        sep = lex.next()
        if sep is None:
            break
        if sep != ",":
            raise _bad_request(f"unable to parse requirement: found '{sep}', expected: ',' or 'end of string'")
    return LabelSelector(tuple(sorted(reqs, key=lambda r: (r.key, r.op))))


def _check_value(value: str) -> None:
    if errs := label_value_errors(value):
        raise _bad_request(f"unable to parse requirement: values[0][{value}]: Invalid value: {value!r}: {errs[0]}")


_EXPR_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


def selector_from_object(selector: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` (``matchLabels``/``matchExpressions``) into a selector.

    A missing selector selects nothing and an empty one selects everything, as for
    Deployments and Services.

    Raises:
        Invalid: 422 for an unknown operator or values where none belong.
    """
    if selector is None:
        return NOTHING
    reqs: list[Requirement] = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = _EXPR_OPS.get(expr.get("operator", ""))
        values = tuple(sorted(str(v) for v in expr.get("values") or ()))
        if op is None:
            raise Invalid(
                f"matchExpressions: Invalid value: {expr.get('operator')!r}: not a valid selector operator",
                "use In, NotIn, Exists or DoesNotExist",
                status=422,
                reason="Invalid",
            )
        if op in ("in", "notin") and not values:
            raise Invalid(
                "matchExpressions.values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                status=422,
                reason="Invalid",
            )
        if op in ("exists", "!") and values:
            raise Invalid(
                "matchExpressions.values: Forbidden: may not be specified when `operator` is 'Exists' or "
                "'DoesNotExist'",
                status=422,
                reason="Invalid",
            )
        reqs.append(Requirement(expr.get("key", ""), op, values))
    return LabelSelector(tuple(sorted(reqs, key=lambda r: (r.key, r.op))))


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """The string form of a ``metav1.LabelSelector`` (as ``status.selector`` of a scalable resource)."""
    return str(selector_from_object(selector)) if selector is not None else ""


def labels_match(selector: Mapping[str, str] | None, labels: Mapping[str, str] | None) -> bool:
    """Whether every ``selector`` pair (a Service's or nodeSelector's map form) is in ``labels``."""
    if not selector:
        return True
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


# ---------------------------------------------------------------------------------------------------------- fields


def _get_path(obj: Mapping[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def _pod_default(path: str) -> Callable[[Mapping[str, Any]], str]:
    def get(obj: Mapping[str, Any]) -> str:
        v = _get_path(obj, path)
        if isinstance(v, bool):
            return "true" if v else "false"
        return "" if v is None else str(v)

    return get


_COMMON_FIELDS = ("metadata.name", "metadata.namespace")
#: Field selectors each kind accepts beyond metadata.name and metadata.namespace (store key -> fields).
FIELD_SELECTORS: dict[str, tuple[str, ...]] = {
    "pods": (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "events": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "events.events.k8s.io": (
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "reason",
        "reportingController",
        "type",
    ),
    "nodes": ("spec.unschedulable",),
    "namespaces": ("status.phase",),
    "secrets": ("type",),
    "jobs.batch": ("status.successful",),
    "replicasets.apps": ("status.replicas",),
    "replicationcontrollers": ("status.replicas",),
    "persistentvolumeclaims": ("status.phase",),
    "persistentvolumes": ("status.phase",),
    "certificatesigningrequests.certificates.k8s.io": ("spec.signerName",),
}

_EVENT_SOURCE = "source"


@dataclass(frozen=True)
class FieldRequirement:
    """One ``field=value`` or ``field!=value`` term of a field selector."""

    field: str
    value: str
    negate: bool = False

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether the object's field has (or, negated, has not) the value."""
        if self.field == _EVENT_SOURCE:
            have = str((obj.get("source") or {}).get("component") or obj.get("reportingComponent") or "")
        else:
            have = _pod_default(self.field)(obj)
        return (have == self.value) != self.negate


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of field requirements; empty matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether the object satisfies every requirement."""
        return all(r.matches(obj) for r in self.requirements)

    @property
    def empty(self) -> bool:
        """True when this selector selects everything."""
        return not self.requirements

    def value_of(self, field: str) -> str | None:
        """The value an equality term requires of ``field`` (``metadata.name=x`` -> ``x``), if any."""
        for r in self.requirements:
            if r.field == field and not r.negate:
                return r.value
        return None


_ANY_FIELD = FieldSelector()
_FIELD_TERM_RE = re.compile(r"^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$")


def parse_field_selector(text: str | None, key: str | None = None) -> FieldSelector:
    """Parse a field selector (``metadata.name=web,status.phase!=Running``) for the type stored under ``key``.

    Raises:
        Invalid: 400 BadRequest for bad syntax or a field the kind does not support.
    """
    if text is None or not text.strip():
        return _ANY_FIELD
    allowed = _COMMON_FIELDS + FIELD_SELECTORS.get(key or "", ())
    reqs: list[FieldRequirement] = []
    for term in _split_terms(text):
        m = _FIELD_TERM_RE.match(term)
        if m is None:
            raise _bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, op, value = m.groups()
        if key is not None and field not in allowed:
            raise _bad_request(f'field label not supported: {field}; this resource supports "{", ".join(allowed)}"')
        reqs.append(FieldRequirement(field, value.replace("\\,", ",").replace("\\=", "="), op == "!="))
    return FieldSelector(tuple(reqs))


def _split_terms(text: str) -> list[str]:
    terms: list[str] = []
    buf: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            buf.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    terms.append("".join(buf))
    return [t for t in terms if t.strip()]
