"""Typed views of the three custom resources; the CRDs in ``crds/`` are generated from them.

``KINDS`` is the one registry of what the operator serves: the kind's names, its spec and
status models, and its printer columns.
"""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from . import driftcheck, incident, rollback


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    singular: str
    short_name: str
    spec: type[BaseModel]
    status: type[BaseModel]
    printer_columns: list[dict]
    description: str


INCIDENT = Kind("Incident", "incidents", "incident", "inc", incident.IncidentSpec, incident.IncidentStatus,
                incident.PRINTER_COLUMNS,
                "An operational incident (deployment, pipeline, performance or security) that the operator "
                "assesses, diagnoses, remediates within approval rules, escalates and records.")
DRIFTCHECK = Kind("DriftCheck", "driftchecks", "driftcheck", "dc", driftcheck.DriftCheckSpec,
                  driftcheck.DriftCheckStatus, driftcheck.PRINTER_COLUMNS,
                  "A scheduled Terraform drift check (terraform plan -detailed-exitcode) with a drift report "
                  "and optional, approved resolution.")
ROLLBACK = Kind("Rollback", "rollbacks", "rollback", "rb", rollback.RollbackSpec, rollback.RollbackStatus,
                rollback.PRINTER_COLUMNS,
                "A verified rollback of a Lambda function's code or a static site's S3 assets (with a CloudFront "
                "invalidation) to a known-good release.")

KINDS: tuple[Kind, ...] = (INCIDENT, DRIFTCHECK, ROLLBACK)
