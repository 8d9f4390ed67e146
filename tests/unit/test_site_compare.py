"""Which static-site objects a rollback copies: a multipart copy's ETag never equals its backup's."""
import pytest

from opex_operator.ports.facts import ObjectInfo
from opex_operator.runbooks.rollback import restore_plan

SINGLE = "9b2cf535f27731c974343645a3985328"          # MD5 of a single-part upload
MULTIPART = "d41d8cd98f00b204e9800998ecf8427e-2"      # what a 2-part copy of it gets


@pytest.mark.parametrize("backup,live,copied", [
    (ObjectInfo(SINGLE, 9_437_184), ObjectInfo(SINGLE, 9_437_184), False),                      # same upload
    (ObjectInfo(SINGLE, 9_437_184), ObjectInfo(MULTIPART, 9_437_184, restored_from=SINGLE), False),  # our copy
    (ObjectInfo("a1-3", 9_437_184, checksum="ChecksumCRC64NVME:ZP3m"),
     ObjectInfo(MULTIPART, 9_437_184, checksum="ChecksumCRC64NVME:ZP3m"), False),               # full-object checksum
    (ObjectInfo(SINGLE, 9_437_184), ObjectInfo(MULTIPART, 9_437_184), True),                    # someone else's upload
    (ObjectInfo(SINGLE, 9_437_184), ObjectInfo(MULTIPART, 9_437_185, restored_from=SINGLE), True),  # changed since
    (ObjectInfo(SINGLE, 9_437_184), ObjectInfo(MULTIPART, 9_437_184, restored_from="0ld-2"), True),  # another backup
    (ObjectInfo("a1-3", 9_437_184, checksum="ChecksumCRC64NVME:ZP3m"),
     ObjectInfo(MULTIPART, 9_437_184, checksum="ChecksumCRC64NVME:xxxx"), True),                # content differs
])
def test_a_restored_object_is_recognised_by_its_checksum_or_its_restore_record(backup, live, copied):
    to_copy, unchanged, _ = restore_plan({"backups/1/video.mp4": backup}, "backups/1/", {"video.mp4": live}, "")
    assert (to_copy == {"video.mp4": "backups/1/video.mp4"}, unchanged == ["video.mp4"]) == (copied, not copied)
