"""The ``opex`` command line, also installed as ``kubectl-opex`` (so ``kubectl opex ...`` works).

Exit codes: 0 ok; 1 error (a one-line message; ``--debug`` shows the traceback); 2 changes found
(``opex plan summarize``, like ``terraform plan -detailed-exitcode``); 3 a plan fails a gate
(``opex plan summarize --gates``).
"""
from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console

from ..api.driftcheck import RUN_ANNOTATION, SPEC_STALLS
from .cluster import SINGULAR, CliError, Cluster, plural_of

APPROVABLE = ("incident", "driftcheck", "rollback")


class Opex(click.Group):
    """Turns any failure into a one-line message (exit 1) unless ``--debug``."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as err:  # noqa: BLE001 - the CLI's promise: no traceback without --debug
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise CliError(f"{type(err).__name__}: {err}"[:500]) from None


def console() -> Console:
    """Colours only on a terminal; off a terminal (a pipe, a file) lines are not cut to 80 columns."""
    terminal = sys.stdout.isatty()
    # emoji off: ':secret:' in an ARN is text, not a shortcode
    return Console(highlight=False, emoji=False, width=None if terminal else 220, soft_wrap=not terminal)


def cluster(ctx: click.Context) -> Cluster:
    if "cluster" not in ctx.obj:
        ctx.obj["cluster"] = Cluster(ctx.obj["kubeconfig"], ctx.obj["context"], ctx.obj.get("as_user"))
    return ctx.obj["cluster"]


def namespace_of(ctx: click.Context, namespace: str | None) -> str:
    return namespace or cluster(ctx).default_namespace


namespace_option = click.option("-n", "--namespace", help="Namespace (default: the kubeconfig context's).")


@click.group(cls=Opex, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--kubeconfig", envvar="KUBECONFIG", help="Path to the kubeconfig (default $KUBECONFIG).")
@click.option("--context", help="kubeconfig context to use.")
@click.option("--as", "as_user", help="Act as this user (impersonation, as kubectl --as).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, kubeconfig: str | None, context: str | None, as_user: str | None, debug: bool) -> None:
    """opex: the AWS CI/CD operations runbook as Kubernetes custom resources.

    \b
    Exit codes: 0 ok, 1 error, 2 changes found (plan summarize, like terraform plan -detailed-exitcode),
    3 a plan fails a gate (plan summarize --gates).
    Example:
      opex get -A
    """
    ctx.ensure_object(dict)
    ctx.obj.update(kubeconfig=kubeconfig.split(":")[0] if kubeconfig else None, context=context, as_user=as_user,
                   debug=debug)


# -- reading ---------------------------------------------------------------------------------------
@cli.command()
@click.argument("kind", required=False)
@namespace_option
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace.")
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table")
@click.pass_context
def get(ctx: click.Context, kind: str | None, namespace: str | None, all_namespaces: bool, output: str) -> None:
    """List incidents, driftchecks or rollbacks (all three when KIND is omitted; KIND may be a list).

    \b
    Example:
      opex get incidents -A
      opex get dc,rb -n platform -o yaml
    """
    from . import render

    plurals = list(dict.fromkeys(plural_of(k) for k in kind.split(","))) if kind else [
        "incidents", "driftchecks", "rollbacks"]
    ns = None if all_namespaces else namespace_of(ctx, namespace)
    found = {p: cluster(ctx).list(p, ns) for p in plurals}
    if output != "table":
        items = [o for p in plurals for o in found[p]]
        click.echo(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2) if output == "json"
                   else yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}, sort_keys=False))
        return
    out, now = console(), dt.datetime.now(dt.timezone.utc)
    shown = False
    for p in plurals:
        if not found[p]:
            continue
        if len(plurals) > 1:
            out.print(f"[bold]{p.upper()}[/bold]")
        out.print(render.table(p, found[p], now, all_namespaces))
        shown = True
    if not shown:
        click.echo(f"No {' or '.join(plurals)} found" + (f" in namespace {ns}." if ns else "."), err=True)


@cli.command()
@click.argument("kind")
@click.argument("name")
@namespace_option
@click.option("-o", "--output", type=click.Choice(["text", "json", "yaml"]), default="text")
@click.pass_context
def describe(ctx: click.Context, kind: str, name: str, namespace: str | None, output: str) -> None:
    """Show one object: findings, root cause, steps, escalation, timeline (by kind).

    \b
    Example:
      opex describe incident checkout-deploy-failed -n payments
    """
    from . import render

    plural = plural_of(kind)
    obj = cluster(ctx).get(plural, namespace_of(ctx, namespace), name)
    if output == "json":
        click.echo(json.dumps(obj, indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump(obj, sort_keys=False))
    else:
        console().print(render.describe(SINGULAR[plural], obj))


# -- steering --------------------------------------------------------------------------------------
@cli.command()
@click.argument("kind", type=click.Choice(APPROVABLE))
@click.argument("name")
@click.argument("step_ids", nargs=-1)
@click.option("--checksum", help="driftcheck: the plan checksum to approve (default: the last run's).")
@namespace_option
@click.pass_context
def approve(ctx: click.Context, kind: str, name: str, step_ids: tuple[str, ...], checksum: str | None,
            namespace: str | None) -> None:
    """Approve an incident's steps, a driftcheck's plan, or a rollback, in your own name.

    The approval records who you are as the API server knows you (SelfSubjectReview); the
    admission policy admits it only in that name, and under its two-person rule not from the
    object's creator.

    \b
    Examples:
      opex approve incident checkout-deploy-failed rollback-lambda-checkout-api
      opex approve driftcheck production-network --checksum sha256:1f2e...
      opex approve rollback www-checkout-restore
    """
    if checksum and (kind != "driftcheck" or not re.fullmatch(r"sha256:[a-f0-9]{64}", checksum)):
        raise CliError(f"{checksum!r} is not a plan checksum (sha256:<64 hex digits>, as in a driftcheck's "
                       f"status.lastResult.planChecksum)" if kind == "driftcheck" else
                       "--checksum is for driftchecks only")
    c, ns = cluster(ctx), namespace_of(ctx, namespace)
    if kind == "incident":
        _approve_steps(c, ns, name, step_ids)
    elif step_ids:
        raise CliError(f"a {kind} has no step ids to approve; run: opex approve {kind} {name}")
    elif kind == "rollback":
        me = c.whoami()
        c.patch("rollbacks", ns, name, {"spec": {"approved": True, "approvedBy": me}})
        click.echo(f"rollback {name}: approved as {me}")
    else:
        _approve_plan(c, ns, name, checksum)


def _approve_steps(c: Cluster, ns: str, name: str, step_ids: tuple[str, ...]) -> None:
    """Add a named approval for each of ``step_ids`` (those not approved already) to the incident's
    spec.remediation.approvals, retrying a write that lost a race. Raises CliError."""
    if not step_ids:
        raise CliError("name the step ids to approve, e.g. opex approve incident NAME rollback-lambda-my-fn")
    me = c.whoami()
    for _ in range(5):
        obj = c.get("incidents", ns, name)
        steps = {s["id"]: s for s in (obj.get("status") or {}).get("steps", []) if s.get("mutating")}
        unknown = [s for s in step_ids if s not in steps]
        if unknown:
            known = ", ".join(steps) or "none yet (the incident has not been diagnosed)"
            raise CliError(f"incident {name} has no step {', '.join(unknown)}; its remediation steps: {known}")
        remediation = obj["spec"].get("remediation") or {}
        approvals = list(remediation.get("approvals") or [])
        done = {a["step"]: a["by"] for a in approvals}
        done.update({s: "(approvedSteps)" for s in remediation.get("approvedSteps") or [] if s not in done})
        new = [s for s in dict.fromkeys(step_ids) if s not in done]
        for step in step_ids:
            if step in done:
                click.echo(f"incident {name}: {step} is already approved by {done[step]}")
        if not new:
            return
        approvals += [{"step": s, "by": me} for s in new]
        if c.patch_unchanged(obj, {"spec": {"remediation": {"approvals": approvals}}}):
            click.echo(f"incident {name}: approved {', '.join(new)} as {me}")
            return
    raise CliError(f"incident {name} kept changing while approving; try again")


def _approve_plan(c: Cluster, ns: str, name: str, checksum: str | None) -> None:
    """Approve the driftcheck's plan ``checksum`` (default: its last run's) in your own name. Raises CliError."""
    obj = c.get("driftchecks", ns, name)
    planned = ((obj.get("status") or {}).get("lastResult") or {}).get("planChecksum")
    chosen = checksum or planned
    if not chosen:
        raise CliError(f"driftcheck {name} has no plan to approve yet (status.lastResult.planChecksum is empty); "
                       f"run it first: opex run driftcheck {name}")
    if checksum and planned and checksum != planned:
        click.echo(f"note: {checksum} is not the last run's plan ({planned}); it applies only when a run produces "
                   f"exactly that plan", err=True)
    me = c.whoami()
    c.patch("driftchecks", ns, name, {"spec": {"resolution": {"approvedPlanChecksum": chosen, "approvedBy": me}}})
    click.echo(f"driftcheck {name}: approved plan {chosen} as {me}")


@cli.command()
@click.argument("kind", type=click.Choice(["incident"]))
@click.argument("name")
@click.option("--note", help="What you are doing about it (shown in the timeline and the next pages).")
@namespace_option
@click.pass_context
def ack(ctx: click.Context, kind: str, name: str, note: str | None, namespace: str | None) -> None:
    """Acknowledge an incident in your own name: you are on it, escalation stops at its level.

    \b
    Example:
      opex ack incident checkout-deploy-failed --note "rolling back the release"
    """
    c, ns = cluster(ctx), namespace_of(ctx, namespace)
    me = c.whoami()
    obj = c.get("incidents", ns, name)
    before = obj["spec"].get("acknowledgement") or {}
    phase = (obj.get("status") or {}).get("phase")
    if phase in ("Resolved", "Closed"):
        raise CliError(f"incident {name} is {phase} already; there is nothing to acknowledge")
    if before.get("by") == me and before.get("note") == note:
        click.echo(f"incident {name}: already acknowledged by you")
        return
    c.patch("incidents", ns, name, {"spec": {"acknowledgement": {"by": me, "note": note}}})
    took_over = f" (was {before['by']})" if before.get("by") and before["by"] != me else ""
    click.echo(f"incident {name}: acknowledged by {me}{took_over}")


@cli.command()
@click.argument("kind", type=click.Choice(["rollback"]))
@click.argument("name")
@namespace_option
@click.pass_context
def abort(ctx: click.Context, kind: str, name: str, namespace: str | None) -> None:
    """Stop a rollback in flight (it ends Aborted, saying what was restored).

    \b
    Example:
      opex abort rollback www-checkout-restore
    """
    c, ns = cluster(ctx), namespace_of(ctx, namespace)
    phase = (c.get("rollbacks", ns, name).get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed", "Aborted"):
        raise CliError(f"rollback {name} has already ended ({phase}); there is nothing to abort")
    c.patch("rollbacks", ns, name, {"spec": {"abort": True}})
    click.echo(f"rollback {name}: abort requested (it stops between steps and says what was restored)")


@cli.command()
@click.argument("kind", type=click.Choice(["driftcheck"]))
@click.argument("name")
@namespace_option
@click.option("--wait/--no-wait", default=True, help="Wait for the run's result (default).")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds to wait.")
@click.pass_context
def run(ctx: click.Context, kind: str, name: str, namespace: str | None, wait: bool, timeout: float) -> None:
    """Run a driftcheck now, once (through the opex.dev/run-requested annotation).

    Waits until the operator has answered this request: when the run leads to more at once (a
    force-unlock of an orphaned lock and the run after it, an automatic resolution and its
    verification run), the answer is the last of those runs.

    \b
    Example:
      opex run driftcheck production-network
    """
    c, ns = cluster(ctx), namespace_of(ctx, namespace)
    token = uuid.uuid4().hex[:10]
    c.patch("driftchecks", ns, name, {"metadata": {"annotations": {RUN_ANNOTATION: token}}})
    if not wait:
        click.echo(f"driftcheck {name}: run requested ({RUN_ANNOTATION}={token})")
        return
    deadline, out = time.monotonic() + timeout, console()
    with out.status(f"driftcheck {name}: running terraform plan ...") as spinner:
        while time.monotonic() < deadline:
            obj = c.get("driftchecks", ns, name)
            st = obj.get("status") or {}
            # A newer request replaced ours before it ran: its answer answers ours too.
            token = (obj["metadata"].get("annotations") or {}).get(RUN_ANNOTATION) or token
            if st.get("answeredRunRequest") == token:
                break
            # A spec the operator cannot act on (a broken configuration is Stalled too, but it runs)
            stalled = next((cond for cond in st.get("conditions", []) if cond["type"] == "Stalled"
                            and cond["status"] == "True" and cond.get("reason") in SPEC_STALLS), None)
            if stalled and stalled.get("observedGeneration") == obj["metadata"].get("generation"):
                raise CliError(f"driftcheck {name} cannot run: {stalled['reason']}: {stalled['message']}")
            last = st.get("lastResult") or {}
            if st.get("lastRunRequest") == token and last.get("finishedAt"):
                spinner.update(f"driftcheck {name}: {last['outcome']}; the operator goes on"
                               + (f" ({st['pendingRun']})" if st.get("pendingRun") else "") + " ...")
            # the next write of the operator, at once (polling every half second made a sub-second
            # run take up to half a second more)
            c.wait_for_change("driftchecks", ns, name, obj["metadata"].get("resourceVersion", ""),
                              min(10.0, max(0.0, deadline - time.monotonic())))
        else:
            raise CliError(f"driftcheck {name}: no result within {timeout:.0f}s (is the operator running?)")
    last = st.get("lastResult") or {}
    click.echo(f"driftcheck {name}: {last['outcome']} ({last.get('add', 0)} to add, {last.get('change', 0)} to "
               f"change, {last.get('remove', 0)} to destroy) in {last.get('durationSeconds', 0):.2f}s"
               + (f": {last['message']}" if last.get("message") else "")
               + ("" if last.get("trigger", "").endswith(f"={token})") else f" [the last run: {last.get('trigger')}]"))


@cli.group()
def breaker() -> None:
    """The circuit breaker on automated changes (operator policy limits.automatedChangesPerHour)."""


def _breaker_store(ctx: click.Context, namespace: str, operator_namespace: str | None) -> Any:
    """The store of ``namespace``'s breaker: in ``operator_namespace``, or wherever its Lease is found."""
    from ..errors import KubeError
    from ..guardrails.breaker_store import LABEL, BreakerStore
    from ..kube import Kube, Leases

    leases = Leases(Kube(cluster(ctx).api_client))
    if operator_namespace:
        return BreakerStore(leases, operator_namespace)
    try:
        found = leases.leases(f"{LABEL}={namespace}")
    except KubeError as err:
        raise CliError(f"cannot look for the breaker of namespace {namespace} in every namespace ({err.describe()}); "
                       f"name the operator's namespace with --operator-namespace") from None
    homes = sorted({lease.namespace for lease in found})
    if len(homes) > 1:
        raise CliError(f"operators in {', '.join(homes)} each count namespace {namespace}: choose one with "
                       f"--operator-namespace")
    return BreakerStore(leases, homes[0]) if homes else None


operator_namespace_option = click.option(
    "--operator-namespace", help="Where the operator keeps its Leases (its own namespace; found by label when "
    "omitted).")


@breaker.command("status")
@click.argument("namespace")
@operator_namespace_option
@click.pass_context
def breaker_status(ctx: click.Context, namespace: str, operator_namespace: str | None) -> None:
    """The automated changes counted in NAMESPACE in the last hour, and the last reset.

    \b
    Example:
      opex breaker status payments
    """
    from ..api.common import now
    from ..errors import KubeError
    from ..guardrails.breaker_store import lease_name

    store = _breaker_store(ctx, namespace, operator_namespace)
    if store is None:
        click.echo(f"namespace {namespace}: no automated change counted (no breaker Lease); nothing is held")
        return
    try:
        window = store.window(namespace).current(now())
    except (KubeError, ValueError) as err:
        raise CliError(f"namespace {namespace}: {err}") from None
    click.echo(f"namespace {namespace}: {window.count()} automated change(s) in the last hour "
               f"(Lease {store.home}/{lease_name(namespace)})")
    for change in window.changes:
        click.echo(f"  {change.time:%Y-%m-%d %H:%M:%S}Z  {change.environment or '-':<12} {change.id}")
    if window.reset_at:
        click.echo(f"last reset {window.reset_at:%Y-%m-%d %H:%M:%S}Z by {window.reset_by}")


@breaker.command("reset")
@click.argument("namespace")
@operator_namespace_option
@click.pass_context
def breaker_reset(ctx: click.Context, namespace: str, operator_namespace: str | None) -> None:
    """Forget the automated changes counted in NAMESPACE: its Auto may act again at once.

    Every Incident and DriftCheck of NAMESPACE held by the breaker (condition CircuitOpen) is
    annotated so that the operator looks at it again now.

    \b
    Example:
      opex breaker reset payments
    """
    from ..api.guardrails import BREAKER_RESET_ANNOTATION, CIRCUIT_OPEN
    from ..errors import KubeError

    store = _breaker_store(ctx, namespace, operator_namespace)
    try:
        before = store.reset(namespace, f"{cluster(ctx).whoami()} (opex breaker reset)") if store else None
    except KubeError as err:
        raise CliError(f"namespace {namespace}: {err.describe()}") from None
    if before is None:
        click.echo(f"namespace {namespace}: no automated change counted; nothing to reset")
        return
    token, woken = uuid.uuid4().hex[:10], []
    for plural in ("incidents", "driftchecks"):
        for obj in cluster(ctx).list(plural, namespace):
            if any(c.get("type") == CIRCUIT_OPEN and c.get("status") == "True"
                   for c in (obj.get("status") or {}).get("conditions", [])):
                cluster(ctx).patch(plural, namespace, obj["metadata"]["name"],
                                   {"metadata": {"annotations": {BREAKER_RESET_ANNOTATION: token}}})
                woken.append(f"{SINGULAR[plural]} {obj['metadata']['name']}")
    click.echo(f"namespace {namespace}: forgot {before.count()} automated change(s) of the last hour; Auto may act "
               f"again" + (f" ({', '.join(woken)} looked at again now)" if woken else ""))


# -- offline: the product's own parsers on files -----------------------------------------------------
def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except OSError as err:
        raise CliError(f"cannot read {path}: {err.strerror}") from None


@cli.command("plan-job", hidden=True)
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The run's input, as the operator mounted it from the Job's Secret.")
def plan_job(input_path: str) -> None:
    """Run a DriftCheck's plan or approved apply inside its Job's pod (the operator creates the Job:
    spec.runner Job; see terraform/plan_job.py)."""
    from ..terraform.plan_job import main as run_job

    sys.exit(run_job(Path(input_path)))


@cli.group()
def plan() -> None:
    """Terraform plans without a cluster."""


@plan.command("summarize")
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--ignore", multiple=True, help="Resource-address pattern to leave out (repeatable): * matches any "
              "characters, everything else itself, e.g. 'module.legacy.*' or 'aws_instance.web[0]'.")
@click.option("--gates", "gates_file", help="Evaluate plan gates: a YAML file of gates (the fields of "
              "spec.resolution.gates), or a DriftCheck or Incident manifest (its gates, and a DriftCheck's ignore).")
@click.option("--policy", "policy_file", help="The operator policy file: its gates for --namespace and "
              "--environment apply too, as the operator applies them.")
@click.option("--namespace", help="With --policy: the namespace (default: the manifest's).")
@click.option("--environment", help="With --policy: the environment (default: the DriftCheck's spec.environment).")
def plan_summarize(file: str, as_json: bool, ignore: tuple[str, ...], gates_file: str | None,
                   policy_file: str | None, namespace: str | None, environment: str | None) -> None:
    """Summarize `terraform show -json PLAN` or a `terraform plan -json` stream (FILE or - for stdin).

    Terraform's and OpenTofu's formats 0.x and 1.x; several plans in one input (terragrunt's
    `run --all show -json`, one document per line, each under its unit's directory when the log
    prefix says it) are summarised one by one.

    Exits like terraform plan -detailed-exitcode: 2 when applying would change something (moves,
    imports, forgets, output changes and action invocations included), 0 when not (drift nothing
    depends on is listed, not counted), 1 when the plan errored or is not a plan; with several
    plans, as the most severe.

    With --gates or --policy it checks the plan gates the operator checks before an automatic
    apply, and exits 0 when every plan passes them, 3 when one fails a gate, 1 as above.

    \b
    Example:
      terraform show -json plan.out | opex plan summarize -
      terragrunt run --all show -json plan.out | opex plan summarize -
      opex plan summarize --gates gates.yaml plan.json     # in CI: 3 when a gate fails
    """
    from ..terraform.plan import PlanFormatError, parse_input
    from . import render

    text = _read(file)
    try:
        found = parse_input(text, list(ignore))
    except PlanFormatError as err:
        raise CliError(f"{file}: {err}") from None
    verdicts = None
    if gates_file or policy_file:
        verdicts = _gate_verdicts(text, gates_file, policy_file, namespace, environment, list(ignore))
    single = found.plans[0] if len(found.plans) == 1 and found.plans[0].directory is None else None
    if as_json:
        datas = [{**({"directory": p.directory} if not single else {}), **p.summary.to_dict(),
                  **({"gates": render.gate_data(verdicts[i])} if verdicts else {})} for i, p in enumerate(found.plans)]
        data = datas[0] if single else {"plans": datas, "exit_code": found.exit_code}
        click.echo(json.dumps(data, indent=2))
    else:
        console().print(render.plan_summary(single.summary, verdicts[0] if verdicts else None) if single else
                        render.plan_set(found, verdicts))
    if verdicts is None or found.exit_code == 1:
        sys.exit(found.exit_code)
    sys.exit(0 if all(v.passed for v in verdicts) else GATE_FAILED)


GATE_FAILED = 3  # opex plan summarize --gates: a plan fails a gate


def _gate_verdicts(text: str, gates_file: str | None, policy_file: str | None, namespace: str | None,
                   environment: str | None, ignore: list[str]) -> list[Any]:
    """Each plan of ``text`` checked against the gates of ``gates_file`` and ``policy_file``, as the
    operator merges them (policy first; ``guardrails.gates.merge``)."""
    from pydantic import ValidationError

    from ..api.gates import PlanGates
    from ..guardrails.gates import Layer, evaluate_plan, merge
    from ..policy import Policy, PolicyError
    from ..terraform.plan import parse_input

    layers: list[Layer] = []
    if gates_file:
        try:
            docs = [d for d in yaml.safe_load_all(_read(gates_file)) if d]
        except yaml.YAMLError as err:
            raise CliError(f"{gates_file}: not YAML: {err}") from None
        # a manifest file may hold the DriftCheck beside its ConfigMap (as the examples do): take the kind's
        doc = next((d for d in docs if isinstance(d, dict) and d.get("kind") in ("DriftCheck", "Incident")),
                   docs[0] if len(docs) == 1 else None)
        if not isinstance(doc, dict):
            raise CliError(f"{gates_file}: expected gates (denyActions, maxChangedResources, ...) or a manifest")
        kind, spec, meta = doc.get("kind"), doc.get("spec") or {}, doc.get("metadata") or {}
        field, data = {"DriftCheck": ("spec.resolution.gates", (spec.get("resolution") or {}).get("gates")),
                       "Incident": ("spec.remediation.gates", (spec.get("remediation") or {}).get("gates"))}.get(
            str(kind), (gates_file, doc))
        try:
            gates = PlanGates.model_validate(data or {})
        except ValidationError as err:
            raise CliError(f"{gates_file}: invalid gates: {err}") from None
        if kind:
            field = f"{kind} {meta.get('name', '?')} {field}"
            ignore = ignore or list(spec.get("ignore") or [])
            namespace = namespace or meta.get("namespace")
            environment = environment or spec.get("environment")
        layers.append(Layer(field, gates))
    if policy_file:
        if not namespace:
            raise CliError("--policy needs --namespace (or a manifest in --gates that names its namespace)")
        try:
            layers = Policy.load(Path(policy_file)).gate_layers(namespace, environment) + layers
        except PolicyError as err:
            raise CliError(str(err)) from None
    effective = merge(*layers)
    return [evaluate_plan(p.summary, effective, ignore) for p in parse_input(text).plans]


@cli.group()
def lock() -> None:
    """Terraform state locks without a cluster."""


@lock.command("parse")
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def lock_parse(file: str, as_json: bool) -> None:
    """Parse Terraform's or OpenTofu's state-lock error (FILE or - for stdin; colours, boxes and pastes are fine).

    Says whether the lock is held by another run (Held), refused to the caller (Denied) or the
    backend failed (BackendFault), which backend (s3, s3/dynamodb, gcs, azurerm, consul, pg,
    kubernetes, http, remote, local, cos, oss, oci), and the id terraform force-unlock takes when
    the error gives it.

    \b
    Example:
      terraform plan 2>&1 | opex lock parse -
    """
    from ..terraform.locks import LockProblem, parse_lock_error

    found = parse_lock_error(_read(file))
    if found is None:
        raise CliError(f"{file}: no state-lock error ('Error acquiring the state lock') in it")
    info = found.lock or found.holder_info
    fields = info.model_dump(mode="json", exclude_none=True) if info else {}
    if found.lock is None:
        fields.pop("id", None)  # not an id force-unlock takes (see note)
    data = {"problem": found.problem.value, **fields, "who": found.holder, "backend": found.backend or "unknown",
            "message": found.message}
    if found.denial is not None:
        data["denied"] = {k: v for k, v in (("action", found.denial.action), ("principal", found.denial.principal),
                                            ("resource", found.denial.resource)) if v}
    if found.note:
        data["note"] = found.note
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if not isinstance(value, dict):
            click.echo(f"{key.capitalize():<10} {value}")
    if found.problem == LockProblem.DENIED:
        what = found.denial.describe() if found.denial else found.message
        click.echo(f"\nNothing is held: the lock could not be written ({what}). Grant that permission; retrying "
                   f"or force-unlocking cannot help.")
    elif found.problem == LockProblem.BACKEND_FAULT:
        click.echo("\nThe backend failed; no other run is known to hold the lock, so there is nothing to "
                   "force-unlock. Check the backend's health, then retry.")
    elif found.lock is None:
        click.echo("\nThe error names no usable lock id, so nothing can be force-unlocked from it: "
                   "wait for the holder (-lock-timeout) and retry, or find the lock in the backend.")
    else:
        click.echo(f"\nIf its holder is dead: terraform force-unlock {found.lock.id}")


@cli.group()
def event() -> None:
    """AWS events (EventBridge, SNS, SQS) without a cluster."""


@event.command("explain")
@click.argument("file")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--rules", "rules_file", envvar="OPEX_EVENT_MAPPING_FILE", type=click.Path(dir_okay=False),
              help="The event mapping (default $OPEX_EVENT_MAPPING_FILE, else the built-in defaults).")
@click.option("--namespace", envvar="OPEX_EVENT_NAMESPACE", default="default", show_default=True,
              help="Namespace of Incidents no rule places (default $OPEX_EVENT_NAMESPACE).")
def event_explain(file: str, as_json: bool, rules_file: str | None, namespace: str) -> None:
    """Show the Incident each AWS event in FILE (or - for stdin) would open, or why it opens none.

    FILE holds an EventBridge event, an SQS message body, an SNS notification, a CodeStar
    Notifications message, a JSON array of them, or `aws sqs receive-message` output. The intake's
    own mapping runs on it (no cluster, no AWS): the Incident's namespace, name, type, severity and
    targets; `ignored` for events that report no failure; `refused` with the reason for events the
    intake would leave for the dead-letter queue. Exits 1 when any event is refused.

    \b
    Example:
      aws sqs receive-message --queue-url "$DLQ" --max-number-of-messages 10 | opex event explain -
      opex event explain --rules mapping.yaml failed-pipeline.json
    """
    import os

    from ..events.explain import explain
    from ..events.mapping import EventRules
    from ..mapping import MappingError
    from . import render

    try:
        rules = EventRules.load(Path(rules_file) if rules_file else None)
    except MappingError as err:
        raise CliError(str(err)) from None
    namespaces = tuple(n.strip() for n in os.environ.get("OPEX_NAMESPACES", "").split(",") if n.strip())
    found = explain(_read(file), rules, namespace, namespaces)
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        console().print(render.event_explanations(found))
    if any(e["outcome"] == "refused" for e in found):
        sys.exit(1)


# -- operator and local stack ------------------------------------------------------------------------
@cli.command()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def operator(verbose: bool) -> None:
    """Run the operator against $KUBECONFIG (or in-cluster).

    \b
    Example:
      OPEX_NAMESPACES=payments opex operator
    """
    from ..runner import run as run_operator

    run_operator(verbose=verbose)


@cli.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--policy-schema", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Also set properties.policy of this values schema (the chart's values.schema.json) to the "
                   "operator policy's schema.")
def crds(directory: Path | None, policy_schema: Path | None) -> None:
    """Print the CustomResourceDefinitions, or write one file per kind into DIRECTORY.

    \b
    Example:
      opex crds | kubectl apply --server-side -f -
    """
    from ..api import KINDS
    from ..api.crdgen import render, values_schema, write_all

    if policy_schema is not None:
        from ..policy import Policy

        doc = json.loads(policy_schema.read_text())
        doc["properties"]["policy"] = {**values_schema(Policy),
                                       "description": doc["properties"]["policy"].get("description", "")}
        policy_schema.write_text(json.dumps(doc, indent=2) + "\n")
    if directory is None:
        click.echo("---\n".join(render(k) for k in KINDS), nl=False)
    else:
        for path in write_all(directory):
            click.echo(path)


def _hack(script: str) -> Path:
    hack = Path(__file__).resolve().parents[3] / "hack"
    if not (hack / script).is_file():
        raise CliError("opex demo/down run from a clone of the opex-operator repository (they need hack/)")
    return hack / script


@cli.command()
def demo() -> None:
    """Start the local stack and run the demo scenario (what `make demo` runs; left running).

    \b
    Example:
      opex demo && opex get -A
    """
    import subprocess

    sys.exit(subprocess.call([sys.executable, str(_hack("demo.py"))]))


@cli.command()
def down() -> None:
    """Stop the local stack the demo started (what `make down` runs).

    \b
    Example:
      opex down
    """
    import subprocess

    sys.exit(subprocess.call([sys.executable, str(_hack("stack.py")), "down"]))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``opex`` and ``kubectl-opex``).

    Usage mistakes are one line and exit 1 like every error (click's default, exit 2, is this
    tool's "drift found").
    """
    try:
        cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="opex", standalone_mode=False)
    except click.UsageError as err:
        command = err.ctx.command_path if err.ctx else "opex"
        click.echo(f"opex: {err.format_message()} (see {command} --help)", err=True)
        sys.exit(1)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except click.Abort:
        click.echo("opex: aborted", err=True)
        sys.exit(1)
