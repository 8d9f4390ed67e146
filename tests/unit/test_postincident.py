import datetime as dt

from support.builders import NOW, spec
from opex_operator.api.incident import (IncidentPhase, IncidentStatus, RootCause, RootCauseCategory as Cat, Step,
                                        StepState)
from opex_operator.runbooks.postincident import markdown, record


def resolved_status():
    return IncidentStatus(phase=IncidentPhase.RESOLVED, detected_at=NOW, assessed_at=NOW + dt.timedelta(seconds=2),
                          resolved_at=NOW + dt.timedelta(seconds=40),
                          root_cause=RootCause(category=Cat.LAMBDA_DEPLOYMENT, summary="checkout-api v2 fails"),
                          steps=[Step(id="rollback-lambda-checkout-api", action="lambda:UpdateFunctionCode",
                                      mutating=True, state=StepState.SUCCEEDED, attempts=1, outputs="rolled back")])


def test_high_severity_needs_a_post_mortem_and_a_manual_incident_shows_a_monitoring_gap():
    rec = record(spec(), resolved_status(), NOW, "x-postincident")
    assert rec.post_mortem_required and rec.duration_seconds == 40 and rec.time_to_assess_seconds == 2
    assert rec.action_items[0].startswith("Hold a blameless post-mortem")
    assert any("alarm on the function's Errors" in i for i in rec.action_items)
    assert any(i.startswith("Monitoring gap") for i in rec.action_items)


def test_alert_sourced_low_incident_has_no_post_mortem_or_gap():
    s = spec(severity="low", source={"kind": "Alertmanager", "alert": {"name": "LambdaErrors"}})
    rec = record(s, resolved_status(), NOW, "x")
    assert not rec.post_mortem_required
    assert not any(i.startswith("Monitoring gap") for i in rec.action_items)


def test_markdown_report_has_every_section():
    st = resolved_status()
    rec = record(spec(), st, NOW, "x")
    text = markdown("prod", "checkout", spec(), st, rec)
    for heading in ("# Post-incident report", "## Root cause", "## Steps", "## Timeline", "## Action items"):
        assert heading in text
    assert "| rollback-lambda-checkout-api | lambda:UpdateFunctionCode | Succeeded | 1 | rolled back |" in text


def test_every_root_cause_category_has_a_follow_up_action():
    from opex_operator.api.incident import RootCauseCategory
    from opex_operator.runbooks.postincident import FOLLOW_UP

    assert set(FOLLOW_UP) == set(RootCauseCategory)
