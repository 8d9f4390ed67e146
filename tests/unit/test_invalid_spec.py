"""A spec the models refuse (normally the CRD schema stops it first) ends the pass with the field named."""
from __future__ import annotations

import asyncio

import pytest

from opex_operator.api.driftcheck import DriftCheckStatus
from opex_operator.api.incident import IncidentStatus
from opex_operator.api.rollback import RollbackStatus
from opex_operator.controllers.driftcheck import DriftCheckController
from opex_operator.controllers.incident import IncidentController
from opex_operator.controllers.rollback import RollbackController
from opex_operator.policy import Policy
from support.fakes import TERRAFORM_POLICY, FakeAws, FakeObjects, FakeWorkspaces, condition, observed, sink_of


@pytest.mark.parametrize("controller,status,spec,field,phase", [
    (IncidentController(FakeAws(), FakeObjects(), FakeWorkspaces(), Policy(), None), IncidentStatus(),
     {"severity": "high"}, "spec.type", "Failed"),
    (RollbackController(FakeAws(), FakeObjects(), Policy()), RollbackStatus(), {"lambda": {"to": {"previous": True}}},
     "spec.lambda.functionName", "Failed"),
    (DriftCheckController(FakeObjects(), FakeWorkspaces(), TERRAFORM_POLICY), DriftCheckStatus(), {"schedule": []},
     "spec.schedule", None),
    # stored before the CRD refused it: a lock of any age would count as orphaned
    (DriftCheckController(FakeObjects(), FakeWorkspaces(), TERRAFORM_POLICY), DriftCheckStatus(),
     {"schedule": ["0 9 * * *"], "source": {"configMapRef": {"name": "tf"}},
      "lock": {"forceUnlock": "IfOrphaned", "orphanedAfter": "0s"}}, "spec.lock.orphanedAfter", None),
])
def test_invalid_spec_stalls_naming_the_field(controller, status, spec, field, phase):
    obj = observed(status, spec, controller.resource.plural, generation=3)
    assert asyncio.run(controller.reconcile(obj)) is None
    ready, stalled = condition(status, "Ready"), condition(status, "Stalled")
    assert (ready.status, ready.reason) == ("False", "InvalidSpec") and ready.message.startswith(field)
    assert stalled.status == "True" and ready.observed_generation == 3
    assert getattr(status, "phase", None) == phase
    assert status.observed_generation == 3 and sink_of(obj).reasons() == ["InvalidSpec"]
