"""A spec the models refuse (normally the CRD schema stops it first) ends the pass with the field named."""
from __future__ import annotations

import asyncio

import pytest

from opex_operator.api.incident import IncidentStatus
from opex_operator.api.rollback import RollbackStatus
from opex_operator.controllers.base import Observed
from opex_operator.controllers.incident import IncidentController
from opex_operator.controllers.rollback import RollbackController
from opex_operator.kube import ObjectRef
from opex_operator.policy import Policy
from test_driftcheck_concurrency import Recorder


@pytest.mark.parametrize("controller,status,spec,field", [
    (IncidentController(None, Policy(), None, None), IncidentStatus(), {"severity": "high"}, "spec.type"),
    (RollbackController(None, Policy(), None), RollbackStatus(), {"lambda": {"to": {"previous": True}}},
     "spec.lambda.functionName"),
])
def test_invalid_spec_fails_naming_the_field(controller, status, spec, field):
    obj = Observed(ObjectRef("x", "ns", "bad", "uid"), 3, {}, {}, spec, status, Recorder())
    assert asyncio.run(controller.reconcile(obj)) is None
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert status.phase.value == "Failed" and ready.reason == "InvalidSpec" and ready.message.startswith(field)
    assert status.observed_generation == 3 and obj.recorder.events[0][1] == "InvalidSpec"
