"""The operator image's cache key (hack/images.py): the build context as .dockerignore defines it, so an
unchanged tree reuses the built image and a change to anything the image holds builds a new one."""
from __future__ import annotations

import shutil
from pathlib import Path

import images

ROOT = Path(__file__).resolve().parents[2]


def test_the_context_is_what_dockerignore_lets_in_and_nothing_else():
    files = {str(f.relative_to(ROOT)) for f in images.context_files(ROOT)}
    assert {"pyproject.toml", "uv.lock", "README.md", "hack/uv-requirements.txt", "hack/opentofu/go.mod",
            "hack/opentofu/go.sum", "operator/opex_operator/__main__.py"} <= files
    assert all(f.split("/")[0] in {"pyproject.toml", "uv.lock", "README.md", "hack", "operator"} for f in files)
    assert not [f for f in files if f.startswith("hack/") and not f.startswith(("hack/opentofu/", "hack/uv-"))]
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc") or ".egg-info" in f]


def small_tree(root: Path) -> Path:
    shutil.copy(ROOT / ".dockerignore", root / ".dockerignore")
    (root / "Dockerfile").write_text("FROM scratch\n")
    for name in ("pyproject.toml", "uv.lock", "README.md", "hack/uv-requirements.txt", "hack/opentofu/go.mod",
                 "operator/opex_operator/__init__.py", "tests/unit/test_x.py", "operator/opex_operator/__pycache__/x.pyc"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    return root


def test_the_digest_moves_with_the_images_content_and_its_base_images_only(tmp_path):
    root = small_tree(tmp_path)
    bases = {"PYTHON_IMAGE": "localhost/opex/python:3.11-bookworm-1", "PYTHON_IMAGE_ID": "sha256:aa"}
    first = images.context_digest(bases, root)
    (root / "tests" / "unit" / "test_x.py").write_text("changed")
    (root / "operator" / "opex_operator" / "__pycache__" / "x.pyc").write_text("changed")
    assert images.context_digest(bases, root) == first  # not in the image
    (root / "operator" / "opex_operator" / "__init__.py").write_text("changed")
    second = images.context_digest(bases, root)
    assert second != first
    assert images.context_digest({**bases, "PYTHON_IMAGE_ID": "sha256:bb"}, root) != second
    (root / "Dockerfile").write_text("FROM scratch\nUSER 1\n")
    assert images.context_digest(bases, root) != second
