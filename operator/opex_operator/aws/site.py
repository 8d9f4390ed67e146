"""S3 and CloudFront actions of the runbook's static-asset rollback.

Seed: "aws s3 sync s3://BUCKET/backups/DATE/ s3://BUCKET/ [--delete]" then
"aws cloudfront create-invalidation --distribution-id ID --paths '/*'". Here the sync is made
exact and resumable: an object already restored is never copied again, and the invalidation's
CallerReference makes its creation idempotent (AWS returns the existing invalidation for a
repeated reference).

Comparing objects: an ETag is the MD5 of the content only for objects uploaded in one part; a
multipart upload or copy (a copy goes multipart from MULTIPART_THRESHOLD, 8 MB, as boto3's managed
copy does) gets ``<md5 of the part MD5s>-<parts>`` (S3 docs, "Checking object integrity"), so a
restored large object never has its backup's ETag. Two objects of the same size are therefore the
same when their ETags match, or their full-object additional checksums match (``ChecksumType``
FULL_OBJECT, e.g. CRC64NVME, which does not depend on the parts), or the live one was copied from
that very backup object: every copy records the backup's ETag in the user metadata
``opex-restored-from``. Only multipart objects need a HeadObject to read those.
"""
from __future__ import annotations

from typing import Any

from boto3.s3.transfer import TransferConfig

from ..ports.facts import ObjectInfo
from .clients import AwsClients
from ..errors import AwsError

RESTORED_FROM = "opex-restored-from"
CHECKSUMS = ("ChecksumCRC64NVME", "ChecksumCRC32C", "ChecksumCRC32", "ChecksumSHA256", "ChecksumSHA1")
# Headers a copy with MetadataDirective REPLACE must carry over, or S3 drops them.
CONTENT_HEADERS = ("ContentType", "CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage",
                   "Expires", "WebsiteRedirectLocation")
# Below this many bytes an object is copied with one CopyObject, as boto3's managed copy itself does
# (its TransferConfig default, 8 MB); from it on the managed copy goes multipart, which objects over
# CopyObject's 5 GB limit need (S3 API Reference, CopyObject).
MULTIPART_THRESHOLD: int = TransferConfig().multipart_threshold


class SiteActions:
    def __init__(self, clients: AwsClients, region: str | None, role_key: str | None):
        self.s3 = clients.client("s3", region, role_key)
        self.cloudfront = clients.client("cloudfront", region, role_key)

    def bucket_exists(self, bucket: str) -> bool:
        """HeadBucket; False on 404. Raises AwsError otherwise (403: the bucket may exist elsewhere)."""
        try:
            self.s3.head_bucket(Bucket=bucket)
            return True
        except AwsError as err:
            if err.not_found:
                return False
            raise

    def listing(self, bucket: str, prefix: str, exclude: str | None = None) -> dict[str, ObjectInfo]:
        """Every object under ``prefix`` (paginated), keyed by full key; keys under ``exclude`` left out.

        Multipart objects (ETag ``...-N``) are read with HeadObject for their full-object checksum
        and ``opex-restored-from`` metadata (see the module docstring).
        """
        out: dict[str, ObjectInfo] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if exclude and obj["Key"].startswith(exclude):
                    continue
                etag = obj["ETag"].strip('"')
                out[obj["Key"]] = self._multipart(bucket, obj["Key"], etag, obj["Size"]) if "-" in etag else \
                    ObjectInfo(etag, obj["Size"])
        return out

    def _multipart(self, bucket: str, key: str, etag: str, size: int) -> ObjectInfo:
        head = self.s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        checksum = None
        if head.get("ChecksumType") == "FULL_OBJECT":
            name = next((c for c in CHECKSUMS if head.get(c)), None)
            checksum = f"{name}:{head[name]}" if name else None
        return ObjectInfo(etag, size, checksum, (head.get("Metadata") or {}).get(RESTORED_FROM))

    def copy(self, source_bucket: str, source_key: str, bucket: str, key: str) -> None:
        """Copy one object, keeping its content headers and metadata and recording the source's ETag in
        ``opex-restored-from``: HeadObject, then one CopyObject below MULTIPART_THRESHOLD, else boto3's
        managed multipart copy (objects over 5 GB work too). Either is retried by botocore (a copy is
        ``aws.clients.IDEMPOTENT``); then raises AwsError. Thread-safe (boto3 clients are)."""
        source = {"Bucket": source_bucket, "Key": source_key}
        head = self.s3.head_object(**source)
        extra: dict[str, Any] = {name: head[name] for name in CONTENT_HEADERS if head.get(name)}
        extra["Metadata"] = {**(head.get("Metadata") or {}), RESTORED_FROM: head["ETag"].strip('"')}
        extra["MetadataDirective"] = "REPLACE"
        if head["ContentLength"] < MULTIPART_THRESHOLD:  # the managed copy's own test (s3transfer.copies)
            self.s3.copy_object(CopySource=source, Bucket=bucket, Key=key, **extra)
        else:
            self.s3.copy(source, bucket, key, ExtraArgs=extra)

    def delete(self, bucket: str, keys: list[str]) -> list[str]:
        """DeleteObjects in batches of 1000; returns the keys AWS reported as not deleted."""
        failed: list[str] = []
        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]
            result = self.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch],
                                                                   "Quiet": True})
            failed += [e["Key"] for e in result.get("Errors", [])]
        return failed

    def distribution_exists(self, distribution_id: str) -> bool:
        """GetDistribution; False when there is no such distribution. Raises AwsError otherwise."""
        try:
            self.cloudfront.get_distribution(Id=distribution_id)
            return True
        except AwsError as err:
            if err.not_found:
                return False
            raise

    def invalidate(self, distribution_id: str, paths: list[str], reference: str) -> dict[str, Any]:
        """CreateInvalidation with ``reference`` as CallerReference; returns {Id, Status}."""
        result = self.cloudfront.create_invalidation(DistributionId=distribution_id, InvalidationBatch={
            "Paths": {"Quantity": len(paths), "Items": paths}, "CallerReference": reference})
        return result["Invalidation"]

    def invalidation_status(self, distribution_id: str, invalidation_id: str) -> str:
        return self.cloudfront.get_invalidation(DistributionId=distribution_id, Id=invalidation_id)["Invalidation"]["Status"]
