"""Permission denials in the words of the APIs that refuse: who was refused what, on which resource.

A denial names the action, the principal and the resource when the message does, so a root cause
can say "``dynamodb:PutItem`` denied to ``arn:aws:sts::...:assumed-role/ci``" instead of "access
denied". The forms, each from the service's own error format:

* AWS (IAM's "User: ARN is not authorized to perform: ACTION on resource: ARN because ...";
  ``AccessDenied``/``AccessDeniedException``; aws-sdk-go-v2's ``operation error DynamoDB: PutItem``
  and botocore's ``when calling the PutItem operation`` name the call when the message does not);
* Google Cloud (``googleapi: Error 403: PRINCIPAL does not have storage.objects.create access to
  ...``, ``Permission 'storage.objects.create' denied on resource``, a bare ``Error 403: Access
  denied., forbidden``);
* Azure (``AuthorizationFailed``: "The client 'ID' with object id 'ID' does not have authorization
  to perform action 'ACTION' over scope 'SCOPE'"; ``AuthorizationPermissionMismatch`` from Storage);
* Kubernetes (``leases.coordination.k8s.io "NAME" is forbidden: User "NAME" cannot create
  resource "leases" in API group ...``);
* PostgreSQL (``permission denied for table states``), Consul and plain HTTP (``403 Forbidden``,
  ``Unexpected response code: 403 (Permission denied)``), Terraform's http backend ("endpoint
  requires auth", "endpoint invalid auth").

A file-system "Permission denied" (a script without its execute bit) is not one of them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

DENIED = re.compile("|".join([
    r"AccessDenied(?:Exception)?|UnauthorizedOperation|UnauthorizedAccess|AuthorizationError",
    r"is\s+not\s+authorized\s+to\s+perform|requested access to the resource is denied",
    r"googleapi: Error 403\b|\bPERMISSION_DENIED\b|does not have [\w.]+ access to|Permission '[\w.]+' denied",
    r"\bAuthorization(?:Failed|PermissionMismatch)\b|does not have authorization to perform action",
    r"This request is not authorized to perform this operation",
    r"\bis forbidden: User \"",
    r"permission denied for (?:table|schema|relation|database|sequence)\b",
]))
# A bare HTTP 403: a denial where the context says which API answered (a state backend), but in a build log as
# likely a package registry's answer to a missing token, so :data:`DENIED` leaves it out.
HTTP_DENIED = re.compile(r"\b403 Forbidden\b|\bStatus(?:Code)?[=:]\s*403\b|response code:? 403\b|"
                         r"HTTP remote state endpoint (?:requires auth|invalid auth)|\b401 Unauthorized\b|"
                         r"\bunauthorized\b")
# AWS: "User: ARN is not authorized to perform: ACTION on resource: ARN because ..."; a wrapped diagnostic may
# break the sentence over several lines.
_AWS = re.compile(r"(?:User:\s+(?P<principal>\S+)\s+)?is\s+not\s+authorized\s+to\s+perform:?\s+"
                  r"(?P<action>[\w-]+:[\w*-]+)(?:\s+on\s+resource:?\s+(?P<resource>[^\s,]+))?")
# Which call was refused when the message does not say: aws-sdk-go-v2 or botocore.
_OPERATION = re.compile(r"operation error (?P<service>[\w ]+?): (?P<op>\w+)|when calling the (?P<call>\w+) operation")
_GCP = re.compile(r"(?P<principal>[\w.+-]+@[\w.-]+) does not have (?P<action>[\w.]+) access to (?P<resource>[^.\n]+)")
_GCP_PERMISSION = re.compile(r"Permission '(?P<action>[\w.]+)' denied on (?:resource )?(?P<resource>[^\s(]+)?")
_AZURE = re.compile(r"The client '(?P<principal>[^']+)'(?: with object id '[^']+')? does not have authorization to "
                    r"perform action '(?P<action>[^']+)'(?: over scope '(?P<resource>[^']+)')?")
_KUBE = re.compile(r"(?P<resource>[\w.-]+ \"[^\"]*\") is forbidden: User \"(?P<principal>[^\"]+)\" cannot "
                   r"(?P<verb>[\w-]+) resource \"(?P<kind>[^\"]+)\"(?: in API group \"(?P<group>[^\"]*)\")?")
_POSTGRES = re.compile(r"permission denied for (?P<resource>(?:table|schema|relation|database|sequence) [\w.\"]+)")


@dataclass(frozen=True)
class Denial:
    """A refused call: ``action`` (``dynamodb:PutItem``, ``storage.objects.create``, ``create
    leases.coordination.k8s.io``), ``principal`` (an ARN, a service account, a user) and
    ``resource`` when the message names them; ``line`` is the message's line that says so."""

    line: str
    action: str | None = None
    principal: str | None = None
    resource: str | None = None

    def describe(self) -> str:
        """``ACTION denied to PRINCIPAL on RESOURCE``, saying what the message leaves unnamed."""
        where = f" on {self.resource}" if self.resource else ""
        if self.principal is None:
            what = f"{self.action} denied" if self.action else "access denied"
            return f"{what}{where} (the error names no principal): {self.line}"
        return f"{self.action or 'access'} denied to {self.principal}{where}"


def _line(text: str, start: int, end: int) -> str:
    first = text.rfind("\n", 0, start) + 1
    last = text.find("\n", end)
    return text[first: last if last >= 0 else len(text)].strip()[:300]


def find(text: str, http: bool = False) -> Denial | None:
    """The first permission denial in ``text`` (plain text), with what it names; None when there is none.
    ``http``: a bare HTTP 403 (:data:`HTTP_DENIED`) counts too (the caller knows which API answered)."""
    signal = DENIED.search(text) or (HTTP_DENIED.search(text) if http else None)
    if signal is None:
        return None
    line = _line(text, signal.start(), signal.end())
    if (m := _AWS.search(text)):
        return Denial(line, m.group("action"), _trim(m.group("principal")), _trim(m.group("resource")))
    if (m := _GCP.search(text)):
        return Denial(line, m.group("action"), m.group("principal"), m.group("resource").strip())
    if (m := _GCP_PERMISSION.search(text)):
        return Denial(line, m.group("action"), None, _trim(m.group("resource")))
    if (m := _AZURE.search(text)):
        return Denial(line, m.group("action"), m.group("principal"), m.group("resource"))
    if (m := _KUBE.search(text)):
        group = f".{m.group('group')}" if m.group("group") else ""
        return Denial(line, f"{m.group('verb')} {m.group('kind')}{group}", m.group("principal"), m.group("resource"))
    if (m := _POSTGRES.search(text)):
        return Denial(line, None, None, m.group("resource"))
    if (m := _OPERATION.search(text)):
        action = f"{m.group('service').lower().replace(' ', '')}:{m.group('op')}" if m.group("op") else m.group("call")
        return Denial(line, action)
    return Denial(line)


def _trim(value: str | None) -> str | None:
    return value.rstrip(".,;") or None if value else None
