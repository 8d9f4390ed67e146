"""Each moto internal the local stack's extensions patch is still what they expect (hack/moto_compat.py).

One test per internal: after a change to uv.lock that moves moto, a failure names the moto
version, the internal and what moved, in seconds, before any e2e test meets a TypeError.
"""
from __future__ import annotations

import pytest

import moto_compat


@pytest.mark.parametrize("item", moto_compat.INTERNALS, ids=[i.name for i in moto_compat.INTERNALS])
def test_the_moto_internal_the_extension_patches_is_unchanged(item: moto_compat.Internal):
    item.verify()


def test_a_moved_internal_is_reported_with_the_moto_version_and_what_moved():
    def moved() -> None:
        raise moto_compat.MotoMoved("get_pipeline returns CodePipeline")

    with pytest.raises(moto_compat.MotoMoved, match=r"^moto \d+\.\d+\.\d+: X \(used by y\) moved: .*CodePipeline"):
        moto_compat.Internal("X", "y", moved).verify()
