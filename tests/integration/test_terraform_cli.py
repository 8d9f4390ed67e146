"""The Terraform adapter against the real CLI (no provider downloads: terraform_data, local-exec)."""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

import procs
import tfrepo
from opex_operator.policy import Policy
from opex_operator.terraform.locks import parse_state_lock
from opex_operator.terraform.plan import parse_show_json
from opex_operator.terraform.runner import Terraform
from opex_operator.terraform.session import Session
from opex_operator.terraform.workspace import RunDir, SourceError, fetch_git

LOCAL = """\
resource "terraform_data" "a" {
  input = "%s"
}
"""


def tf(binary: str, workdir: Path, env: dict[str, str] | None = None) -> Terraform:
    env = env or {"PATH": os.environ["PATH"], "HOME": str(workdir), "TF_CLI_CONFIG_FILE": os.devnull}
    return Terraform(binary, workdir, env)


def session(t: Terraform, run_dir: Path) -> Session:
    """The workspace session over an initialised directory, as Workspaces.open gives it."""
    return Session(t, RunDir(run_dir), None, "test", "test", time.monotonic() + 120)


def test_detailed_exit_codes_and_show_json(terraform_bin, tmp_path):
    (tmp_path / "main.tf").write_text(LOCAL % "one")
    t = tf(terraform_bin, tmp_path)
    s = session(t, tmp_path / "run")

    async def scenario():
        assert (await t.init({}, timeout=60)).ok
        s.run_dir.root.mkdir()
        changes = await s.plan("5s")
        assert changes.exit_code == 2 and s.has_saved_plan()
        summary = parse_show_json(await s.show_plan())
        assert [c.address for c in summary.changes] == ["terraform_data.a"] and summary.add == 1
        assert (await s.apply_saved_plan("5s")).ok
        assert (await s.plan("5s")).exit_code == 0
        (tmp_path / "main.tf").write_text(LOCAL % "one\" +")
        broken = await s.plan("5s")
        assert broken.exit_code == 1 and "Error" in broken.diagnostic()
        assert await t.version() == (await t.version())

    asyncio.run(scenario())


def test_timeout_interrupts_then_kills_the_whole_process_group(terraform_bin, tmp_path):
    (tmp_path / "main.tf").write_text('resource "terraform_data" "s" {\n  provisioner "local-exec" {\n'
                                      '    command = "sleep 300 & echo $! > child.pid; wait"\n  }\n}\n')
    t = tf(terraform_bin, tmp_path)

    async def scenario():
        assert (await t.init({}, timeout=60)).ok
        started = time.monotonic()
        result = await t.run("apply", "-auto-approve", "-input=false", "-no-color", timeout=3)
        return result, time.monotonic() - started

    import opex_operator.terraform.runner as runner

    runner.GRACE_SECONDS = 3.0  # Terraform waits for the provisioner on SIGINT; then the group is killed
    try:
        result, took = asyncio.run(scenario())
    finally:
        runner.GRACE_SECONDS = 15.0
    assert result.timed_out and result.exit_code is None and took < 20
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while procs.alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not procs.alive(child), "the local-exec child outlived the timeout"


def test_lock_error_from_a_held_s3_lock_and_force_unlock(terraform_bin, tmp_path, aws):
    bucket = tfrepo.new_bucket()
    config = tfrepo.backend_config(bucket)
    holder_dir, checker_dir = tmp_path / "holder", tmp_path / "checker"
    for d in (holder_dir, checker_dir):
        d.mkdir()
        (d / "main.tf").write_text(tfrepo.SLOW_TF % {"token": d.name, "seconds": 60})
        tfrepo.terraform(terraform_bin, d, *tfrepo.init_args(config))
    import subprocess
    import signal

    holder = subprocess.Popen([terraform_bin, "apply", "-auto-approve", "-input=false", "-no-color"], cwd=holder_dir,
                              env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        import boto3

        s3 = boto3.client("s3")
        deadline = time.monotonic() + 30
        while not s3.list_objects_v2(Bucket=bucket).get("Contents") or not any(
                o["Key"].endswith(".tflock") for o in s3.list_objects_v2(Bucket=bucket)["Contents"]):
            assert time.monotonic() < deadline, "the holder never took the lock"
            time.sleep(0.2)
        t = tf(terraform_bin, checker_dir, {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull})
        s = session(t, tmp_path / "run")
        s.run_dir.root.mkdir()

        async def scenario():
            blocked = await s.plan("1s")
            lock = parse_state_lock(blocked.stderr)
            assert blocked.exit_code == 1 and lock is not None and lock.operation == "OperationTypeApply"
            wrong = await s.force_unlock("not-the-lock")
            assert not wrong.ok
            assert (await s.force_unlock(lock.id)).ok
            return lock

        lock = asyncio.run(scenario())
        assert lock.path == f"{bucket}/network/terraform.tfstate"
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()


def test_git_source_export_and_its_failures(tmp_path):
    repo = tfrepo.Repo(tmp_path)
    first = repo.commit({"network/main.tf": LOCAL % "one"}, "one")
    repo.commit({"network/main.tf": LOCAL % "two"}, "two")
    cache, out = tmp_path / "cache", tmp_path / "out"
    assert asyncio.run(fetch_git(repo.url, first, cache, out)) == first
    assert '"one"' in (out / "network" / "main.tf").read_text()
    head = asyncio.run(fetch_git(repo.url, "main", cache, out))  # reuses the cached mirror
    assert head != first and '"two"' in (out / "network" / "main.tf").read_text()
    with pytest.raises(SourceError) as err:
        asyncio.run(fetch_git(repo.url, "v9.9.9", cache, out))
    assert err.value.reason == "RefNotFound"
    with pytest.raises(SourceError) as err:
        asyncio.run(fetch_git(f"file://{tmp_path}/missing.git", "main", cache, out))
    assert err.value.reason == "SourceUnavailable"


def test_a_plan_of_the_exported_revision_runs_while_git_asks_whether_the_ref_moved(terraform_bin, tmp_path):
    """``check_source_later``: the revision an earlier run exported is planned at once, and
    ``git ls-remote`` says meanwhile whether the branch still names it; checked first, a moved
    branch is fetched and planned."""
    from opex_operator.api.driftcheck import DriftCheckSpec
    from opex_operator.terraform.session import Workspaces

    class NoObjects:
        def config_map_data(self, namespace, name):
            return None

        def secret_data(self, namespace, name):
            return None

    repo = tfrepo.Repo(tmp_path)
    first = repo.commit({"network/main.tf": LOCAL % "one"}, "one")
    spec = DriftCheckSpec.model_validate({"schedule": ["0 9 * * *"], "source": {"git": {
        "url": repo.url, "ref": "main", "path": "network"}}})
    workspaces = Workspaces(NoObjects(), terraform_bin, tmp_path / "work", tmp_path / "cache")
    grant = Policy.model_validate({"rules": [{"namespaces": ["*"], "actions": ["terraform:Plan"], "terraform": {
        "backends": [{"type": "local"}]}}]}).terraform_grant("ns", "terraform:Plan", "default")

    async def run(later: bool) -> tuple[str, int | None, bool, bool]:
        session = await workspaces.open("ns", "net", spec, 120, grant, check_source_later=later)
        left_running = session.source_check is not None
        try:
            plan = await session.plan("5s", json_stream=True)
            moved = await session.source_moved()
        finally:
            await session.cancel_source_check()
        return session.revision, plan.exit_code, left_running, moved

    assert asyncio.run(run(True)) == (first, 2, False, False)   # nothing exported yet: fetched first
    assert asyncio.run(run(True)) == (first, 2, True, False)    # exported: asked while it planned; not moved
    second = repo.commit({"network/main.tf": LOCAL % "two"}, "two")
    assert asyncio.run(run(True)) == (first, 2, True, True)     # the branch moved: this plan is not the source's
    assert asyncio.run(run(False)) == (second, 2, False, False)  # checked first: the new revision, planned
    assert '"two"' in (tmp_path / "work" / "ns" / "net" / "check" / "src" / "network" / "main.tf").read_text()


AGREEMENT = [  # configuration after "a" and "b" were applied -> what terraform plan -detailed-exitcode says
    ("nothing changed", 'resource "terraform_data" "a" { input = "one" }\nresource "terraform_data" "b" {}\n'),
    ("a change", 'resource "terraform_data" "a" { input = "two" }\nresource "terraform_data" "b" {}\n'),
    ("a move only", 'resource "terraform_data" "a2" { input = "one" }\nresource "terraform_data" "b" {}\n'
                    'moved {\n  from = terraform_data.a\n  to   = terraform_data.a2\n}\n'),
    ("a forget only", 'resource "terraform_data" "a" { input = "one" }\n'
                      'removed {\n  from = terraform_data.b\n  lifecycle { destroy = false }\n}\n'),
    ("an output only", 'resource "terraform_data" "a" { input = "one" }\nresource "terraform_data" "b" {}\n'
                       'output "region" { value = "us-east-1" }\n'),
]


@pytest.mark.parametrize("config", [c[1] for c in AGREEMENT], ids=[c[0] for c in AGREEMENT])
def test_the_summary_exit_code_agrees_with_terraform_plan_detailed_exitcode(terraform_bin, tmp_path, config):
    from opex_operator.terraform.plan import parse_stream

    (tmp_path / "main.tf").write_text('resource "terraform_data" "a" { input = "one" }\nresource "terraform_data" "b" {}\n')
    t = tf(terraform_bin, tmp_path)

    async def scenario():
        assert (await t.init({}, timeout=60)).ok
        assert (await t.run("apply", "-auto-approve", "-input=false", "-no-color", timeout=60)).ok
        (tmp_path / "main.tf").write_text(config)
        s = session(t, tmp_path / "run")
        s.run_dir.root.mkdir()
        planned = await s.plan("5s")
        summary = parse_show_json(await s.show_plan())
        stream = await t.run("plan", "-json", "-input=false", "-detailed-exitcode", timeout=60)
        return planned.exit_code, summary, stream

    exit_code, summary, stream = asyncio.run(scenario())
    assert summary.exit_code == exit_code
    assert parse_stream(stream.stdout).exit_code == stream.exit_code == exit_code


def test_an_errored_plan_stream_is_exit_1_like_terraform(terraform_bin, tmp_path):
    from opex_operator.terraform.plan import parse_stream

    (tmp_path / "main.tf").write_text('resource "terraform_data" "e" { input = var.nope }\n')
    t = tf(terraform_bin, tmp_path)

    async def scenario():
        assert (await t.init({}, timeout=60)).ok
        return await t.run("plan", "-json", "-input=false", "-detailed-exitcode", timeout=60)

    result = asyncio.run(scenario())
    summary = parse_stream(result.stdout)
    assert result.exit_code == summary.exit_code == 1
    assert summary.errors[0].startswith("Reference to undeclared input variable")


def test_a_workspace_is_initialised_once_until_its_configuration_changes(terraform_bin, tmp_path):
    from opex_operator import metrics
    from opex_operator.api.driftcheck import DriftCheckSpec
    from opex_operator.terraform.session import Workspaces

    files = {"main.tf": LOCAL % "one"}

    class Source:
        def config_map_data(self, namespace, name):
            return dict(files)

        def secret_data(self, namespace, name):
            return None

    def inits() -> float:
        return metrics.REGISTRY.get_sample_value("opex_terraform_runs_total",
                                                 {"command": "init", "outcome": "success"}) or 0

    spec = DriftCheckSpec.model_validate({"schedule": ["0 9 * * *"], "source": {"configMapRef": {"name": "tf"}}})
    workspaces = Workspaces(Source(), terraform_bin, tmp_path / "work", tmp_path / "cache")

    async def plan_once() -> int:
        grant = Policy.model_validate({"rules": [{"namespaces": ["*"], "actions": ["terraform:Plan"], "terraform": {
            "backends": [{"type": "local"}]}}]}).terraform_grant("ns", "terraform:Plan", "default")
        session = await workspaces.open("ns", "net", spec, 120, grant)
        return (await session.plan("5s", json_stream=True)).exit_code

    before = inits()
    assert asyncio.run(plan_once()) == 2
    assert asyncio.run(plan_once()) == 2
    assert inits() == before + 1, "the second run initialised the unchanged workspace again"
    files["main.tf"] = LOCAL % "two"
    assert asyncio.run(plan_once()) == 2
    assert inits() == before + 2, "a changed configuration was not initialised"
    workspaces.discard("ns", "net")
    assert not (tmp_path / "work" / "ns" / "net").exists()


def test_output_goes_to_files_and_no_child_outlives_a_command_that_exited(terraform_bin, tmp_path):
    """A provisioner that puts a child in the background: Terraform exits, the child is killed
    with what is left of the group, and the output is in logs/ (never a pipe a dead operator
    would break)."""
    (tmp_path / "main.tf").write_text('resource "terraform_data" "s" {\n  provisioner "local-exec" {\n'
                                      '    command = "sleep 300 > /dev/null 2>&1 & echo $! > child.pid; echo started"\n'
                                      '  }\n}\n')
    t = tf(terraform_bin, tmp_path)

    async def scenario():
        assert (await t.init({}, timeout=60)).ok
        return await t.run("apply", "-auto-approve", "-input=false", "-no-color", timeout=60)

    result = asyncio.run(scenario())
    assert result.ok and "started" in result.stdout and "started" in (tmp_path / "logs" / "apply.stdout").read_text()
    assert not (tmp_path / "process.json").exists()
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while procs.alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not procs.alive(child), "a local-exec child outlived the apply"


def test_a_process_group_left_by_a_dead_operator_is_reaped_at_the_next_start(tmp_path):
    """The record names a group still running (as a Terraform whose operator was SIGKILLed would
    be); reap() stops it; a record whose group is gone stops nothing and is removed."""
    import json
    import subprocess

    from opex_operator.process import start_ticks
    from opex_operator.terraform.runner import reap

    run_dir = tmp_path / "work" / "team-a" / "net" / "check"
    run_dir.mkdir(parents=True)
    orphan = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300; wait"], start_new_session=True)
    (run_dir / "process.json").write_text(json.dumps({"pgid": orphan.pid, "start": start_ticks(orphan.pid),
                                                      "command": "apply", "operator": "old-pod/1/1"}))
    gone = tmp_path / "work" / "team-b" / "net" / "check"
    gone.mkdir(parents=True)
    (gone / "process.json").write_text(json.dumps({"pgid": 2 ** 22 - 3, "start": 1, "command": "plan",
                                                   "operator": "old-pod/1/1"}))
    try:
        found = asyncio.run(reap(tmp_path / "work", grace=2.0))
        assert orphan.wait(timeout=10) is not None
    finally:
        if orphan.poll() is None:
            os.killpg(orphan.pid, 9)
    assert len(found) == 1 and "team-a/net/check" in found[0] and "old-pod/1/1" in found[0]
    assert not (run_dir / "process.json").exists() and not (gone / "process.json").exists()
