"""Lambda actions of the runbook's "Rollback Deployment" and "Lambda Function Issues" procedures.

Each call does one thing; callers check the current state first (``current``) and act only
when it differs, which makes every step idempotent across operator restarts.
"""
from __future__ import annotations

import base64
import hashlib
import urllib.request
from typing import Any

from ..ports.facts import FunctionState, LambdaVersion
from .clients import READ_TIMEOUT, AwsClients

# UpdateFunctionCode takes a ZipFile of at most 50 MB (Lambda quotas, "Deployment package size").
MAX_ZIP_BYTES = 50 * 1024 * 1024


class LambdaActions:
    """The Lambda port (``ports.LambdaPort``) over boto3, for one region and role."""

    def __init__(self, clients: AwsClients, region: str | None, role_key: str | None):
        self.lam = clients.client("lambda", region, role_key)
        self.s3 = clients.client("s3", region, role_key)

    def current(self, name: str, alias: str | None = None) -> FunctionState:
        """What ``name`` (or its ``alias``) runs now. Raises ResourceNotFoundException."""
        version = self.lam.get_alias(FunctionName=name, Name=alias)["FunctionVersion"] if alias else "$LATEST"
        config = self.lam.get_function(FunctionName=name, Qualifier=version)["Configuration"]
        return FunctionState(name=name, version=version if alias else "$LATEST", code_sha256=config["CodeSha256"],
                             state=config.get("State"), last_update_status=config.get("LastUpdateStatus"),
                             last_update_reason=config.get("LastUpdateStatusReason"),
                             environment=(config.get("Environment") or {}).get("Variables", {}))

    def versions(self, name: str) -> list[LambdaVersion]:
        """Published versions, ascending."""
        out: list[LambdaVersion] = []
        for page in self.lam.get_paginator("list_versions_by_function").paginate(FunctionName=name):
            out += [LambdaVersion(v["Version"], v["CodeSha256"], v.get("LastModified"))
                    for v in page["Versions"] if v["Version"] != "$LATEST"]
        return sorted(out, key=lambda v: int(v.version))

    def version_sha(self, name: str, version: str) -> str:
        """CodeSha256 of published ``version``. Raises ResourceNotFoundException when it does not exist."""
        return self.lam.get_function(FunctionName=name, Qualifier=version)["Configuration"]["CodeSha256"]

    def point_alias(self, name: str, alias: str, version: str) -> None:
        """UpdateAlias: ``alias`` serves ``version`` (the CodeDeploy-style rollback)."""
        self.lam.update_alias(FunctionName=name, Name=alias, FunctionVersion=version)

    def restore_code_from_version(self, name: str, version: str) -> None:
        """Replace $LATEST's code with published ``version``'s package.

        The package is downloaded from the presigned ``Code.Location`` GetFunction returns (AWS:
        "GetFunction ... Code.Location: a presigned URL that you can use to download the
        deployment package"), then uploaded with UpdateFunctionCode (one attempt: it mutates).
        The download has the AWS calls' read timeout (10 s per read). Raises ValueError when it
        exceeds the 50 MB direct-upload limit.
        """
        location = self.lam.get_function(FunctionName=name, Qualifier=version)["Code"]["Location"]
        with urllib.request.urlopen(location, timeout=READ_TIMEOUT) as resp:
            package = resp.read(MAX_ZIP_BYTES + 1)
        if len(package) > MAX_ZIP_BYTES:
            raise ValueError(f"version {version} of {name} is larger than 50 MB; roll back from S3 (to.s3) instead")
        self.lam.update_function_code(FunctionName=name, ZipFile=package)

    def restore_code_from_s3(self, name: str, bucket: str, key: str, object_version: str | None = None) -> None:
        """UpdateFunctionCode from an S3 object (the runbook, Deployment Failure
        Runbook, Lambda Function Issues: the ``--s3-bucket --s3-key`` form)."""
        args: dict[str, Any] = {"FunctionName": name, "S3Bucket": bucket, "S3Key": key}
        if object_version:
            args["S3ObjectVersion"] = object_version
        self.lam.update_function_code(**args)

    def set_environment(self, name: str, variables: dict[str, str], current: dict[str, str]) -> None:
        """UpdateFunctionConfiguration with ``variables`` merged over ``current`` (others kept)."""
        self.lam.update_function_configuration(FunctionName=name, Environment={"Variables": {**current, **variables}})

    def package_sha(self, bucket: str, key: str, object_version: str | None = None) -> str:
        """Lambda's CodeSha256 of a deployment package in S3: base64 of the SHA-256 of its bytes
        (Lambda API reference, FunctionConfiguration.CodeSha256). Streams the object in 1 MiB chunks."""
        args = {"Bucket": bucket, "Key": key}
        if object_version:
            args["VersionId"] = object_version
        body = self.s3.get_object(**args)["Body"]
        digest = hashlib.sha256()
        for chunk in iter(lambda: body.read(1 << 20), b""):
            digest.update(chunk)
        return base64.b64encode(digest.digest()).decode()
