"""Real failure logs (tests/realworld/logs) through the Incident's assessment with a fake reader, then its
diagnosis and plan: the root cause the source's resolution supports, and the steps it gets.

The reader answers as AWS would for a failed pipeline whose CodeBuild build ran the artefact (or whose
phase context is the artefact), or for a function whose only code is $LATEST logging it; everything
after the reader is the product's own code (plain text, the failed command's lines, the lock parser,
the classifier, the planner).
"""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from realworld.corpus import Case, params
from support.builders import NOW, build, codebuild_log, failed_pipeline, healthy_lambda, lambda_errors, lines, spec
from support.fakes import FakeReader
from opex_operator.playbooks.assessment import assess
from opex_operator.playbooks.diagnose import classify, findings
from opex_operator.ports.facts import BuildFacts, BuildPhase, PhaseContext
from opex_operator.playbooks.deployment.plan import remediation_steps

TARGETS = {"pipeline": {"name": "checkout-pipeline"}, "codeBuild": {"project": "checkout-deploy"},
           "driftCheckRef": {"name": "prod-network"}}


def observe(case: Case):
    text = case.text().rstrip("\n")
    kind = case.extra["as"]
    if kind == "lambda":
        fn = healthy_lambda(versions=[], code_sha256="bmV3", last_modified=NOW.strftime("%Y-%m-%dT%H:%M:%S.000+0000"))
        events = [p for p in text.split("\n\n") if p.strip()]
        fn.error_lines = [dataclasses.replace(e, group="/aws/lambda/checkout-api")
                          for e in lambda_errors(*events, version="$LATEST", start_minutes_ago=10)]
        s = spec(targets={"lambda": {"functionNames": ["checkout-api"]}, "driftCheckRef": {"name": "prod-network"}})
        return s, FakeReader(lambdas=[fn])
    s = spec(targets=TARGETS)
    if kind == "phase_context":  # the build failed before any command ran: no log, the phase's context says why
        failed = BuildFacts(id="checkout-deploy:b1", project="checkout-deploy", status="FAILED", phases=[
            BuildPhase("SUBMITTED", "SUCCEEDED"), BuildPhase("QUEUED", "SUCCEEDED"),
            BuildPhase(case.extra["phase"], "FAILED", [PhaseContext(case.extra["code"], text)])])
        return s, FakeReader(failed_pipeline(), [failed], [])
    command = case.extra["command"]
    log = lines(*codebuild_log((command, text.split("\n"), 1)))
    context = f"Error while executing command: {command}. Reason: exit status 1"
    return s, FakeReader(failed_pipeline(), [build("BUILD", context)], log)


@pytest.mark.parametrize("case", params("logs"))
def test_real_failure_log_gets_the_root_cause_its_source_gives(case: Case):
    s, reader = observe(case)
    obs = asyncio.run(assess(s, reader, NOW))
    d = findings(obs)
    cause = classify(obs, d, NOW)
    expect = case.expect
    assert cause.category.value == expect["category"], (case.why, cause.summary)
    for words in expect.get("summary", []):
        assert words in cause.summary, (words, cause.summary)
    assert [step.id for step in remediation_steps(s, cause, obs)] == expect["steps"]
