"""Children tied to the operator's lifetime (``process.tied``): started through setpriv when it is
there, and a program that is not on the child's PATH fails as starting it directly fails."""
import subprocess

import pytest

from opex_operator import process


def test_a_tied_child_runs_the_program_with_its_arguments(tmp_path):
    argv, preexec = process.tied("sh", "-c", "echo $0 $1", "tied", "child")
    assert subprocess.run(argv, capture_output=True, text=True, preexec_fn=preexec).stdout == "tied child\n"


def test_a_program_missing_from_the_childs_path_is_file_not_found_not_an_exit_127(tmp_path):
    if not process._SETPRIV:
        pytest.skip("no setpriv here: the preexec_fn path starts the program directly")
    with pytest.raises(FileNotFoundError, match="git"):
        process.tied("git", "ls-remote", path=str(tmp_path))  # an empty directory as the whole PATH
    argv, _ = process.tied("git", "--version")
    assert argv[:4] == [process._SETPRIV, "--pdeathsig", "INT", "--"] and argv[4].endswith("/git")
