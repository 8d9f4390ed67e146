"""``make demo``: the whole product on the local stack, driven through one on-call scenario.

1. The stack starts (control plane, fake AWS seeded with the checkout estate, the operator) and
   ``examples/`` is applied: an Incident for the failed checkout deployment, a DriftCheck of the
   production network, and a dry-run Rollback.
2. The operator assesses the incident, finds the root cause and waits for approval of the
   Lambda rollback; the demo then approves it exactly as on-call would (the command is printed)
   and waits until the incident is Resolved and verified.
   The catalog API is slow (a PerformanceDegradation Incident): CloudWatch metrics, the function's
   configuration, the API called and SELECT 1 on its database (a real PostgreSQL and HTTP app the
   estate's RDS instance and API stage point at) show it memory-bound near its timeout; the demo
   approves the memory raise and Performance Insights, and the function's next minute runs faster.
3. The production network is checked once (its report records the ids of what it manages); then
   an engineer applies an unreviewed branch from a laptop (one extra address in the WAF IP set).
   CloudTrail's record of that UpdateIPSet reaches the operator's queue through EventBridge; the
   DriftCheck (``triggers.cloudTrail``) runs at once instead of at 09:00, reports the drift, who
   made it (not a deployer: OutOfBandChange) and the plan checksum that would restore the
   reviewed configuration.
   A second DriftCheck resolves drift on its own (``examples/driftcheck-gated.yaml``, approval Auto)
   within plan gates: its first plan is applied without a person; a plan that would replace the edge
   certificate is held, the gate and the resource named.
4. The operator's own OpexDriftDetected alert (Prometheus evaluates the shipped rules on the
   operator's metrics) is shown as Alertmanager holds it.
5. Meanwhile orders-api has been failing since its release: CloudWatch counts its errors, the
   exporter exposes them as yet-another-cloudwatch-exporter would, Prometheus' LambdaErrors rule
   fires, Alertmanager sends it to the operator's intake, and the Incident it opened has been
   assessed (it cannot be fixed by a rollback: the database is unreachable).
6. A dry-run Lambda Rollback has reported its plan; the static-site Rollback waits for approval.
   On call (``examples/incident-oncall.yaml``): the red checkout pipeline paged level 1 in the
   PagerDuty and Slack stand-ins (``hack/fakepagerduty.py``, ``hack/fakeslack.py``); the on-call
   engineer clicks Acknowledge on the Slack message (a simulated click, signed as Slack signs it,
   sent to the operator's receiver, written in their Kubernetes name); escalation holds, PagerDuty's
   alert is acknowledged, the Slack message says who.
7. A leaked CI access key (``examples/incident-security.yaml``, Auto mode): the operator has
   contained it (key Inactive, console password removed, the hostile address blocked in WAF, the
   world-open SSH rule revoked), investigated CloudTrail and the API's access log, raised the
   severity on that evidence and paged every level; recovery (rotate the database secret,
   redeploy) waits for a person's approval. The demo shows what was contained, found and awaits.
   A leaked deploy key made itself at home (``examples/incident-security-persistence.yaml``, Auto
   mode): the spec names only the key, CloudTrail shows what it did with itself (a user with a key
   and AdministratorAccess, SSH opened to ::/0, a role session); the operator followed it, contained
   each thing it made and resolved the incident. The demo shows what was found and each undo.
8. AWS published what went wrong elsewhere in the estate, and the operator consumed it from SQS
   (examples/aws/opex-events.yaml's rules and queue): the orders pipeline's Build stage failed
   (CodeBuild's build, the action, the stage and the pipeline each sent an event) and the
   invoice-api Lambda's Errors alarm went to ALARM. One Incident per failure opened on its own; the
   demo shows them assessed, and how many events each counts.
9. A summary table of every object is printed with the Prometheus and Alertmanager URLs;
   everything is left running (``make down``).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid

import yaml

import aws_events
import fakeaws
import perf_estate
import stack
import terraform_cli
import versions

INCIDENT, DRIFTCHECK, SECURITY = "checkout-deploy-failed", "production-network", "ci-key-leaked"
PERSISTENCE = "deploy-key-persistence"
PERF_INCIDENT = "catalog-slow"
ONCALL = "checkout-pipeline-red"
GATED = "production-edge"


def kubectl(kubeconfig: str, *args: str) -> str:
    return stack.kubectl(*args, kubeconfig=kubeconfig)


def opex(kubeconfig: str, *args: str) -> str:
    """The project's CLI (``opex``, installed beside this interpreter), as on-call runs it."""
    cli = os.path.join(os.path.dirname(sys.executable), "opex")
    return subprocess.run([cli, "--kubeconfig", kubeconfig, *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def approve_steps(kubeconfig: str, incident: str, ids: list[str]) -> None:
    """Approve ``ids`` of ``incident`` as on-call does, in their own name (here the demo's kubeconfig
    user, admin), printing the command and what it answered."""
    say(f"\nApproving {({1: 'it', 2: 'both'}).get(len(ids), 'them')} in your own name (the demo's kubeconfig user, admin):\n"
        f"  opex approve incident {incident} {' '.join(ids)}")
    say(f"  {opex(kubeconfig, 'approve', 'incident', incident, *ids)}")


def get(kubeconfig: str, kind: str, name: str) -> dict:
    return json.loads(kubectl(kubeconfig, "get", kind, name, "-o", "json"))


def wait(what: str, check, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit(f"demo: timed out waiting for {what} (see .local/operator.log)")


def alertmanager(record: dict, alertname: str) -> list[dict]:
    """The alerts of that name Alertmanager holds (its API v2)."""
    query = urllib.parse.urlencode({"filter": f'alertname="{alertname}"'})
    with urllib.request.urlopen(f"{record['alertmanager']}/api/v2/alerts?{query}", timeout=10) as resp:
        return json.load(resp)


def assessed_alert_incident(kubeconfig: str) -> dict | None:
    """The Incident the LambdaErrors alert opened, once its assessment is done."""
    items = json.loads(kubectl(kubeconfig, "get", "incidents", "-l", "opex.dev/alertname=lambdaerrors",
                               "-o", "json"))["items"]
    return next((i for i in items if (i.get("status") or {}).get("rootCause")), None)


def clipped(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with a marker when it was cut."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def say(text: str = "") -> None:
    print(text.replace("\t", " "), flush=True)  # AWS messages carry tabs (Lambda's log lines)


def approve_performance_steps(kubeconfig: str) -> list[str]:
    """The performance incident assessed: what it found, then its steps approved as on-call would."""
    incident = wait("the performance incident to need approval",
                    lambda: (s := get(kubeconfig, "incident", PERF_INCIDENT).get("status") or {}).get("phase")
                    == "AwaitingApproval" and s)
    cause = incident["rootCause"]
    say(f"\nIncident {PERF_INCIDENT} (PerformanceDegradation): root cause {cause['category']}")
    say(f"  {cause['summary']}")
    for f in incident["findings"]:
        if f["source"] in ("HTTP", "Database") or (f["source"] == "CloudWatch" and f["severity"] == "Error"):
            say(f"  {f['id']} {f['source']}: {f['observed']}")
    steps = [s for s in incident["steps"] if s["mutating"]]
    for s in steps:
        say(f"  step {s['id']} waits for approval: {s['inputs']}")
    ids = [s["id"] for s in steps]
    approve_steps(kubeconfig, PERF_INCIDENT, ids)
    return ids


def faster_after_the_raise(kubeconfig: str, aws_url: str) -> None:
    """Once the memory is raised, the function's invocations publish shorter Durations (put here as
    Lambda would publish them: moto records no metrics of its own)."""
    step = wait("the memory raise", lambda: next((s for s in (get(kubeconfig, "incident", PERF_INCIDENT).get(
        "status") or {}).get("steps", []) if s["id"].startswith("raise-lambda-memory-")
        and s["state"] == "Succeeded"), None))
    say(f"  {step['id']}: {step['outputs']}")
    os.environ.update(fakeaws.aws_env(aws_url))
    period = get(kubeconfig, "incident", PERF_INCIDENT)["spec"]["targets"]["metrics"]["periodSeconds"]
    changed = dt.datetime.fromisoformat(step["params"]["changedAt"].replace("Z", "+00:00"))
    perf_estate.faster_after(step["params"]["functionName"], changed, period)


def performance_resolved(kubeconfig: str) -> None:
    resolved = wait("the performance incident to be verified (the first whole minute after the change)",
                    lambda: (s := get(kubeconfig, "incident", PERF_INCIDENT).get("status") or {}).get("phase")
                    == "Resolved" and s, timeout=240)
    verify = next(s for s in resolved["steps"] if s["id"] == "verify")
    say(f"\nIncident {PERF_INCIDENT} resolved and verified: {verify['outputs']}")


def apply_network(aws_url: str, unreviewed: bool) -> str:
    """Apply the example network as reviewed (the pipeline's deploy) or with one extra WAF address, as
    an unreviewed branch would; returns the id the state records for the IP set (``terraform_data``
    stands for ``aws_wafv2_ip_set``: no provider can be downloaded here)."""
    change = ('"198.51.100.7/32"]', '"198.51.100.7/32", "192.0.2.66/32"]') if unreviewed else None
    shown = apply_example(aws_url, "driftcheck.yaml", change, "unreviewed-branch" if unreviewed else "reviewed")
    return next(r["values"]["id"] for r in shown["values"]["root_module"]["resources"]
                if r["address"] == "terraform_data.waf_ip_set")


def unreviewed_apply(aws_url: str, example_file: str, old: str, new: str) -> None:
    """Apply an example DriftCheck's configuration with ``old`` replaced by ``new``, outside the operator."""
    apply_example(aws_url, example_file, (old, new), f"unreviewed-{example_file.removesuffix('.yaml')}")


def apply_example(aws_url: str, example_file: str, change: tuple[str, str] | None, work_name: str) -> dict:
    """Apply an example DriftCheck's configuration (with ``change``'s text replaced) outside the
    operator, as a person at a laptop would; returns ``terraform show -json`` of the result."""
    config_map, dc = yaml.safe_load_all((stack.ROOT / "examples" / example_file).read_text())
    work = stack.LOCAL / work_name
    work.mkdir(exist_ok=True)
    source = config_map["data"]["main.tf"]
    (work / "main.tf").write_text(source.replace(*change) if change else source)
    env = {**os.environ, **fakeaws.aws_env(aws_url), "TF_IN_AUTOMATION": "1", "TF_CLI_CONFIG_FILE": os.devnull,
           "CHECKPOINT_DISABLE": "1"}
    binary = terraform_cli.ensure_terraform()
    for args in (["init", "-input=false", "-no-color", *[f"-backend-config={k}={v}"
                                                         for k, v in dc["spec"]["backendConfig"].items()]],
                 ["apply", "-auto-approve", "-input=false", "-no-color"]):
        subprocess.run([binary, *args], cwd=work, env=env, check=True, capture_output=True)
    return json.loads(subprocess.run([binary, "show", "-json"], cwd=work, env=env, check=True, capture_output=True,
                                     text=True).stdout)


LAPTOP = "arn:aws:iam::123456789012:user/dana"


def cloudtrail_records(ip_set_id: str) -> None:
    """Publish what CloudTrail records for the laptop's UpdateIPSet, as EventBridge delivers it."""
    aws_events.publish([aws_events.api_call(
        "UpdateIPSet", "wafv2.amazonaws.com", LAPTOP,
        {"name": "production-blocklist", "scope": "REGIONAL", "id": ip_set_id,
         "addresses": ["203.0.113.0/24", "198.51.100.7/32", "192.0.2.66/32"], "lockToken": str(uuid.uuid4())},
        {"nextLockToken": str(uuid.uuid4())}, source_ip="198.51.100.200",
        user_agent="APN/1.0 HashiCorp/1.0 Terraform/1.11.4 (+https://www.terraform.io)")])


def fetch(url: str, body: dict | None = None) -> dict:
    """GET (or POST ``body`` as JSON to) a stand-in of the local stack."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                     method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=60) as resp:
        return json.loads(resp.read())


def oncall(kc: str, record: dict) -> None:
    """Paged in PagerDuty and Slack, acknowledged from the Slack message's button."""
    incident = wait("the on-call incident's Slack message", lambda: (i := get(kc, "incident", ONCALL)) and (
        (i.get("status") or {}).get("escalation") or {}).get("slack") and i, 120)
    st, uid = incident["status"], incident["metadata"]["uid"]
    posted = st["escalation"]["slack"]
    message = fetch(f"{record['slack']}/_state")["messages"][posted["channel"]][posted["ts"]]
    pages = [e for e in fetch(f"{record['pagerduty']}/_state")["events"] if e["dedup_key"].endswith(uid)]
    say(f"\nOn call: Incident {ONCALL} paged level {st['escalation']['currentLevel']} "
        f"({', '.join(sorted({n['channel'] for n in st['escalation']['notified'] if not n.get('error')}))}):")
    for event in pages:
        say(f"  PagerDuty {event['event_action']} {event['dedup_key']}: {event['payload']['summary']}")
    say(f"  Slack {posted['channel']} (message {posted['ts']}): {message['text']}")
    buttons = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    ack = next(b for b in buttons if b["action_id"] == "opex.acknowledge")
    say(f"  buttons: {', '.join(b['text']['text'] for b in buttons)}")
    say("  oncall@example.com (Slack user U0ONCALL) clicks Acknowledge; Slack posts the signed click to the "
        "operator's receiver, which writes it in their Kubernetes name")
    answer = fetch(f"{record['slack']}/_click", {"user": "U0ONCALL", "action_id": ack["action_id"],
                                                 "value": ack["value"]})
    say(f"  receiver answered HTTP {answer['status']}; Slack shows them: {'; '.join(answer['replies'])}")
    done = wait("the acknowledgement", lambda: (s := get(kc, "incident", ONCALL).get("status") or {}).get(
        "acknowledgement") and s, 60)
    said = wait("PagerDuty's alert acknowledged", lambda: [
        e for e in fetch(f"{record['pagerduty']}/_state")["events"]
        if e["event_action"] == "acknowledge" and e["dedup_key"].endswith(uid)], 30)
    esc = done["escalation"]
    say(f"  acknowledged by {done['acknowledgement']['by']} at {done['acknowledgement']['acknowledgedAt']}: "
        f"escalation holds at level {esc['currentLevel']}"
        + (f", re-escalates at {esc['nextEscalationAt']} if still unresolved" if esc.get("nextEscalationAt") else ""))
    say(f"  PagerDuty: {len(said)} acknowledge event(s); the Slack message now reads: "
        f"{fetch(record['slack'] + '/_state')['messages'][posted['channel']][posted['ts']]['text']}")
    say("  " + kubectl(kc, "get", "incident", ONCALL).strip().replace("\n", "\n  "))


def run_driftcheck(kc: str, name: str) -> dict:
    """Run DriftCheck ``name`` now; its status once that run (and what it decided) is recorded."""
    token = uuid.uuid4().hex[:8]
    kubectl(kc, "annotate", "driftcheck", name, f"opex.dev/run-requested={token}", "--overwrite")
    # answered: the run is recorded and the operator has decided what follows it (an Auto apply and the
    # verification after it may have replaced lastResult since)
    return wait(f"the drift check {name}", lambda: (s := get(kc, "driftcheck", name).get("status") or {})
                .get("answeredRunRequest") == token and s.get("lastResult") and s)


def gate_holds_a_plan(kc: str, aws_url: str) -> None:
    """examples/driftcheck-gated.yaml: Auto applies a plan that passes its gates (the first one creates
    the edge); a later plan that would replace the certificate is held with the gate named."""
    run_driftcheck(kc, GATED)
    applied = wait("the gated DriftCheck's first apply", lambda: (s := get(kc, "driftcheck", GATED).get("status") or {})
                   .get("lastResolution", {}).get("outcome") == "Succeeded" and s)
    say(f"\nDriftCheck {GATED} (approval Auto, gates: no delete or replace, at most 5 changes): its first plan "
        f"({applied['lastResolution']['planChecksum'][:19]}...) passed the gates and was applied without a person; "
        f"the check after it: {applied['lastResult']['outcome']}")
    say("Then an unreviewed branch pointed the edge certificate at another domain (applied by hand).")
    unreviewed_apply(aws_url, "driftcheck-gated.yaml", '"shop.example.com"', '"shop-old.example.com"')
    held = run_driftcheck(kc, GATED)
    remediating = wait("the gate to hold the plan", lambda: next(
        (c for c in (get(kc, "driftcheck", GATED).get("status") or {}).get("conditions", [])
         if c["type"] == "Remediating" and c["reason"] == "GateFailed"), None), 60)
    say(f"  restoring it means a replacement: plan {held['lastResult']['planChecksum'][:19]}... "
        f"({held['lastResult']['add']} to add, {held['lastResult']['remove']} to destroy) is NOT applied")
    say(f"  Remediating=False GateFailed: {remediating['message']}")
    say(f"  a person decides: opex approve driftcheck {GATED} (or, to keep the change, make the configuration "
        f"match it)")


def security_incident(kc: str) -> None:
    """What the security incident contained and found, and the recovery that awaits approval."""
    inc = wait("the security incident's containment",
               lambda: (s := get(kc, "incident", SECURITY).get("status") or {}).get("phase") == "AwaitingApproval" and s)
    c, cause = inc["classification"], inc["rootCause"]
    say(f"\nSecurityIncident {SECURITY}: declared {c['declaredSeverity']}, {c['severity']} on evidence; root cause "
        f"{cause['category']}; levels 1-{inc['escalation']['currentLevel']} paged")
    say(f"  {c['reason']}")
    say("  contained at once (spec.remediation.mode: Auto), each with its undo recorded:")
    for step in inc["steps"]:
        if step["mutating"] and step["state"] == "Succeeded":
            say(f"    {step['id']}: {step['outputs']}")
    say("  found:")
    for f in inc["findings"]:
        if f["source"] in ("CloudTrail", "APIGateway", "EC2"):
            say(f"    {f['id']} {f['source']}: {f['observed']}")
    waiting = [s["id"] for s in inc["steps"] if s.get("requiresApproval") and s["state"] in ("Pending",
                                                                                          "AwaitingApproval")]
    say(f"  recovery waits for a person: {', '.join(waiting)}")
    say(f"    opex approve incident {SECURITY} {' '.join(waiting)}")


def blast_radius(kc: str) -> None:
    """What the leaked deploy key did with itself, found in CloudTrail, contained, and how to undo it."""
    inc = wait("the deploy key's blast radius to be contained and verified",
               lambda: (s := get(kc, "incident", PERSISTENCE).get("status") or {}).get("phase") == "Resolved" and s,
               timeout=180)
    c = inc["classification"]
    say(f"\nSecurityIncident {PERSISTENCE}: the spec names one key; CloudTrail shows what it did with itself "
        f"({c['severity']} on evidence)")
    for f in inc["findings"]:
        if "persistence of the compromise" in f["observed"] or " opened to the world by " in f["observed"]:
            say(f"  {f['id']} {clipped(f['observed'], 180)}")
    say("  contained in Auto, each once, and resolved; to undo one once it is safe:")
    for step in inc["steps"]:
        if step["mutating"] and step.get("undo"):
            say(f"    {step['id']}: {step['undo']}")  # a command: whole, or it reads as a wrong one
    say(f"  post-incident report in ConfigMap {inc['postIncident']['reportRef']['name']}")


def publish_aws_events(aws_url: str) -> None:
    """The orders pipeline's failure and invoice-api's Errors alarm, put to EventBridge as AWS publishes them."""
    import boto3

    os.environ.update(fakeaws.aws_env(aws_url))
    execution = boto3.client("codepipeline").list_pipeline_executions(
        pipelineName="orders-pipeline")["pipelineExecutionSummaries"][0]["pipelineExecutionId"]
    build = boto3.client("codebuild").list_builds_for_project(projectName="orders-build")["ids"][0]
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=4)
    aws_events.publish([
        aws_events.build_failed("orders-build", build, "codepipeline/orders-pipeline", phase="INSTALL"),
        aws_events.pipeline_failed("orders-pipeline", execution, "action", "Build", "BuildAndTest", build),
        aws_events.pipeline_failed("orders-pipeline", execution, "stage", "Build"),
        aws_events.pipeline_failed("orders-pipeline", execution),
        aws_events.alarm_changed("invoice-api-errors", "AWS/Lambda", "Errors", {"FunctionName": "invoice-api"}, "ALARM",
                                 since, description="invoice-api errors since its last release")])


def event_incidents(kc: str) -> None:
    """The Incidents the AWS events opened, assessed."""
    def ready() -> list[dict] | None:
        items = json.loads(kubectl(kc, "get", "incidents", "-l", "opex.dev/source=eventbridge", "-o", "json"))["items"]
        return items if len(items) == 2 and all((i.get("status") or {}).get("rootCause") for i in items) else None

    items = wait("the Incidents AWS events opened to be assessed", ready, 120)
    say("\nAWS published, through EventBridge and the opex-events queue (examples/aws/opex-events.yaml):")
    for inc in sorted(items, key=lambda i: i["metadata"]["name"]):
        spec, st = inc["spec"], inc["status"]
        say(f"  Incident {inc['metadata']['name']} ({spec['type']}, {spec['severity']}) from "
            f"{spec['source']['event']['detailType']}: {st['alert']['occurrences']} event(s) of one occurrence; root "
            f"cause {st['rootCause']['category']}, phase {st['phase']}")
        say(f"    {clipped(st['rootCause']['summary'], 200)}")


def main() -> int:
    for line in versions.lines():
        say(line)
    record = stack.running()
    if record is not None:
        say("the local stack is already running; showing it (make down stops it)")
        return stack.summary(stack.LOCAL / "kubeconfig")
    record = stack.up(timeout=120)
    kc = record["kubeconfig"]
    publish_aws_events(record["aws"])

    incident = wait("the incident to need approval",
                    lambda: (s := get(kc, "incident", INCIDENT).get("status") or {}).get("phase") == "AwaitingApproval"
                    and s)
    cause = incident["rootCause"]
    step = next(s for s in incident["steps"] if s["state"] == "AwaitingApproval")
    assessed = (incident["assessedAt"], incident["detectedAt"])
    say(f"\nIncident {INCIDENT}: {len(incident['findings'])} findings, root cause {cause['category']}")
    say(f"  {cause['summary']}")
    say(f"  detected {assessed[1]}, assessed {assessed[0]}; level {incident['escalation']['currentLevel']} paged")
    say(f"  step {step['id']} waits for approval: {step['inputs']}")
    approve_steps(kc, INCIDENT, [step["id"]])
    resolved = wait("the incident to resolve",
                    lambda: (s := get(kc, "incident", INCIDENT).get("status") or {}).get("phase") == "Resolved" and s)
    done = next(s for s in resolved["steps"] if s["id"] == step["id"])
    say(f"  {done['outputs']}")
    say(f"  resolved at {resolved['resolvedAt']}; post-incident report in ConfigMap "
        f"{resolved['postIncident']['reportRef']['name']}")

    approve_performance_steps(kc)
    faster_after_the_raise(kc, record["aws"])

    apply_network(record["aws"], unreviewed=False)  # as the pipeline deployed it
    token = uuid.uuid4().hex[:8]
    kubectl(kc, "annotate", "driftcheck", DRIFTCHECK, f"opex.dev/run-requested={token}", "--overwrite")
    first = wait("the production network's first check",
                 lambda: (r := (get(kc, "driftcheck", DRIFTCHECK).get("status") or {}).get("lastResult") or {})
                 .get("finishedAt") and r.get("trigger", "").endswith(f"={token})") and r)
    say(f"\nDriftCheck {DRIFTCHECK}, checked on demand (opex.dev/run-requested): {first['outcome']} in "
        f"{first.get('durationSeconds') or 0:.1f}s at revision {first.get('sourceRevision') or '?'}")
    say(f"Meanwhile {LAPTOP} applied an unreviewed branch from a laptop: 192.0.2.66/32 added to the production "
        f"WAF IP set; CloudTrail records the UpdateIPSet and EventBridge sends it to the operator's queue.")
    cloudtrail_records(apply_network(record["aws"], unreviewed=True))
    result = wait("the drift check CloudTrail triggers", lambda: (r := (get(kc, "driftcheck", DRIFTCHECK).get("status")
                                                                        or {}).get("lastResult") or {}).get("finishedAt")
                  and r.get("trigger", "").startswith("CloudTrail:") and r)
    dc = get(kc, "driftcheck", DRIFTCHECK)["status"]
    say(f"\nDriftCheck {DRIFTCHECK} ({result['trigger']}, not at 09:00 UTC): {result['outcome']}, "
        f"{result['add']} to add, {result['change']} to change, {result['remove']} to destroy "
        f"in {result['durationSeconds']:.2f}s")
    if result["outcome"] == "DriftDetected":
        say(f"  differs from the configuration: {', '.join(r['address'] for r in dc['driftedResources'])}; report ConfigMap "
            f"{dc['reportRef']['name']}")
        for change in dc.get("changes", []):
            say(f"  {change['address']} changed by {change['principal']} ({change['eventName']} at {change['time']} "
                f"from {change['sourceAddress']}, CloudTrail event {change['eventId']})"
                + ("" if change["deployer"] else ": not a deployer, flagged OutOfBandChange"))
        say(f"  restore the reviewed configuration by approving that exact plan: opex approve driftcheck {DRIFTCHECK}")
        [drift_alert] = wait("OpexDriftDetected in Alertmanager", lambda: alertmanager(record, "OpexDriftDetected"), 60)
        say(f"\nPrometheus evaluated the operator's rules: {drift_alert['labels']['alertname']} "
            f"({drift_alert['status']['state']} in Alertmanager since {drift_alert['startsAt'][:19]}Z): "
            f"{drift_alert['annotations']['summary']}")

    performance_resolved(kc)
    gate_holds_a_plan(kc, record["aws"])

    opened = wait("the incident the LambdaErrors alert opened to be assessed", lambda: assessed_alert_incident(kc), 90)
    st, spec = opened["status"], opened["spec"]
    say(f"\nAlert LambdaErrors (CloudWatch Errors of {spec['targets']['lambda']['functionNames'][0]}, as "
        f"yet-another-cloudwatch-exporter exposes them) went Prometheus -> Alertmanager -> the operator's intake:")
    say(f"  Incident {opened['metadata']['name']} ({spec['type']}, {spec['severity']}) opened, "
        f"one Incident for {st['alert']['occurrences']} Alertmanager notifications of the alert so far (its "
        f"repeats, every few seconds on this stack); {len(st.get('findings', []))} findings, root cause "
        f"{st['rootCause']['category']}, phase {st['phase']}")
    say(f"  {st['rootCause']['summary']}")

    rollbacks = json.loads(kubectl(kc, "get", "rollbacks", "-o", "json"))["items"]
    for rb in rollbacks:
        st = rb.get("status") or {}
        if rb["spec"].get("dryRun"):
            say(f"\nRollback {rb['metadata']['name']} (dry run): {(st.get('message') or '').removeprefix('dry run: ')}")
        elif st.get("phase") == "AwaitingApproval":
            say(f"\nRollback {rb['metadata']['name']} waits for approval to restore {st.get('target')} from its "
                f"backup: opex approve rollback {rb['metadata']['name']}")

    oncall(kc, record)
    security_incident(kc)
    blast_radius(kc)
    event_incidents(kc)
    say()
    stack.summary(stack.LOCAL / "kubeconfig")
    say(f"\nLeft running. export KUBECONFIG={kc} PATH=$PWD/.venv/bin:$PATH; then kubectl get opex -A, "
        f"opex describe incident {INCIDENT}\n"
        "(more in the README: \"Then try the human side yourself\")")
    say(f"Metrics: {record['metrics']}   Liveness: {record['liveness']}   Logs: {stack.LOCAL}/*.log   Stop: make down")
    say(f"Prometheus: {record['prometheus']} (API: /api/v1/alerts, /api/v1/query)   "
        f"Alertmanager: {record['alertmanager']} (API: /api/v2/alerts)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as err:
        sys.exit(f"demo: {err}")
