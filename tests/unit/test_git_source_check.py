"""A git source whose revision is exported already is planned while ``git ls-remote`` asks the remote
whether its ref still names it (``terraform.session``): when that is left for later and when not,
what the answer means, and that the check never outlives a run that did not ask for it."""
from __future__ import annotations

import asyncio
import gc
import time

import pytest

from opex_operator.terraform import session as session_module
from opex_operator.terraform.runner import Terraform
from opex_operator.terraform.session import Session, _git_source
from opex_operator.terraform.workspace import RunDir, SourceError, remote_revision

EXPORTED = "a" * 40


class Git:
    """``remote_revision`` and ``fetch_git`` of the session module, answered from ``remote``."""

    def __init__(self, monkeypatch, remote: str | None):
        self.remote, self.asked, self.fetched = remote, 0, 0
        monkeypatch.setattr(session_module, "remote_revision", self.remote_revision)
        monkeypatch.setattr(session_module, "fetch_git", self.fetch_git)

    async def remote_revision(self, url: str, ref: str) -> str | None:
        self.asked += 1
        return self.remote

    async def fetch_git(self, url: str, ref: str, cache, into) -> str:
        self.fetched += 1
        into.mkdir(parents=True, exist_ok=True)
        return self.remote or EXPORTED   # an abbreviated id resolves to the commit it names


def exported(tmp_path) -> RunDir:
    run_dir = RunDir(tmp_path / "run")
    run_dir.source.mkdir(parents=True)
    (run_dir.root / ".source").write_text(EXPORTED)
    return run_dir


def source(tmp_path, ref: str, later: bool) -> tuple[str, bool]:
    return asyncio.run(_git_source("file:///repo.git", ref, tmp_path / "cache", exported(tmp_path), later))


def test_a_branch_exported_already_is_not_asked_about_before_a_plan_that_checks_later(tmp_path, monkeypatch):
    git = Git(monkeypatch, "b" * 40)
    assert source(tmp_path, "main", later=True) == (EXPORTED, True)
    assert (git.asked, git.fetched) == (0, 0)


@pytest.mark.parametrize("ref", ["main", "v1.2.0"])
def test_without_check_later_the_remote_is_asked_first_and_a_moved_ref_fetched(tmp_path, monkeypatch, ref):
    git = Git(monkeypatch, "b" * 40)
    assert source(tmp_path, ref, later=False) == ("b" * 40, False)
    assert (git.asked, git.fetched) == (1, 1)


def test_without_check_later_a_ref_that_did_not_move_is_not_fetched(tmp_path, monkeypatch):
    git = Git(monkeypatch, EXPORTED)
    assert source(tmp_path, "main", later=False) == (EXPORTED, False)
    assert (git.asked, git.fetched) == (1, 0)


@pytest.mark.parametrize("ref", [EXPORTED, EXPORTED[:12]])
def test_a_commit_id_is_never_left_for_later(tmp_path, monkeypatch, ref):
    """ls-remote cannot answer for a commit id: the full one is the export, an abbreviation is
    checked (fetched) first as before, never planned and then thrown away."""
    git = Git(monkeypatch, None)
    revision, unchecked = source(tmp_path, ref, later=True)
    assert not unchecked and revision == EXPORTED
    assert (git.asked, git.fetched) == ((0, 0) if ref == EXPORTED else (1, 1))


def test_nothing_exported_yet_is_fetched_first_even_for_a_plan(tmp_path, monkeypatch):
    git = Git(monkeypatch, "b" * 40)
    run_dir = RunDir(tmp_path / "run")
    run_dir.root.mkdir()
    assert asyncio.run(_git_source("file:///repo.git", "main", tmp_path / "cache", run_dir, True)) == ("b" * 40, False)
    assert git.fetched == 1


def session(tmp_path) -> Session:
    return Session(Terraform("terraform", tmp_path, {}), RunDir(tmp_path), None, EXPORTED, "1.11.4",
                   time.monotonic() + 60)


@pytest.mark.parametrize("remote,moved", [(EXPORTED, False), ("b" * 40, True), (None, True)],
                         ids=["same commit", "another commit", "git cannot tell"])
def test_the_source_moved_when_the_remote_names_another_commit_or_cannot_tell(tmp_path, remote, moved):
    async def scenario():
        s = session(tmp_path)
        assert await s.source_moved() is False   # nothing left running: nothing moved
        s.source_check = asyncio.ensure_future(asyncio.sleep(0, remote))
        return await s.source_moved(), s.source_check

    assert asyncio.run(scenario()) == (moved, None)


def test_a_check_left_running_is_cancelled_and_its_git_waited_for(tmp_path):
    ended = []

    async def slow_git():
        try:
            await asyncio.sleep(3600)
        finally:
            ended.append("git killed")   # as _git kills and reaps its process on cancellation

    async def scenario():
        s = session(tmp_path)
        s.source_check = check = asyncio.ensure_future(slow_git())
        await asyncio.sleep(0)
        await s.cancel_source_check()
        return check.cancelled(), list(ended), s.source_check   # before asyncio.run cancels what is left

    assert asyncio.run(scenario()) == (True, ["git killed"], None)


def test_a_failed_check_no_one_asked_about_is_not_reported_as_a_lost_exception(tmp_path):
    lost: list[dict] = []

    async def missing_git():
        raise SourceError("SourceUnavailable", "git is not installed")

    async def scenario():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: lost.append(context))
        s = session(tmp_path)
        s.source_check = asyncio.ensure_future(missing_git())
        await asyncio.sleep(0.01)   # it failed before the run got to ask
        await s.cancel_source_check()
        gc.collect()

    asyncio.run(scenario())
    gc.collect()
    assert lost == []


def test_a_failed_check_is_raised_to_who_asks(tmp_path):
    async def scenario():
        s = session(tmp_path)

        async def missing_git():
            raise SourceError("SourceUnavailable", "git is not installed")
        s.source_check = asyncio.ensure_future(missing_git())
        await s.source_moved()

    with pytest.raises(SourceError, match="git is not installed"):
        asyncio.run(scenario())


def test_git_missing_from_path_is_a_source_error_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))   # an empty directory as the whole PATH
    with pytest.raises(SourceError) as err:
        asyncio.run(remote_revision("file:///repo.git", "main"))
    assert err.value.reason == "SourceUnavailable" and "git is not installed" in str(err.value)
