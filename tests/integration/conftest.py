"""The storage stack the integration file tests share (tests/conftest.py's `storage_stack`: devhost runs the app,
aciemu the tasks and their agent, Azurite the blobs), started once for the package, and the tenants those tests use
on it. Each test module keeps to tenants, job ids and blob containers of its own, so they run in any order."""

from __future__ import annotations

import pytest

from localdev.client import BatchClient
from localdev.localstack import LocalStack
from tests.e2e.conftest import make_tenant


@pytest.fixture(scope="package")
def stack(storage_stack: LocalStack) -> LocalStack:
    """In this package `stack` is the storage stack: no integration test runs the storage-less end-to-end one."""
    return storage_stack


@pytest.fixture(scope="package")
def alice(stack: LocalStack) -> BatchClient:
    return make_tenant(BatchClient(stack.api_url, stack.admin_key), "alice")


@pytest.fixture(scope="package")
def bob(stack: LocalStack) -> BatchClient:
    return make_tenant(BatchClient(stack.api_url, stack.admin_key), "bob")


@pytest.fixture(scope="package")
def carol(stack: LocalStack) -> BatchClient:
    return make_tenant(BatchClient(stack.api_url, stack.admin_key), "carol")
