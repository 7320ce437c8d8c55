"""How the API calls blob storage: off the event loop, with the store's failures turned into answers.

The store is synchronous (azure-storage-blob's sync client, shared per process), so each call runs in a worker
thread. Its errors carry no URL, SAS or key, so their text can be shown; still, a refusal or an outage is the
operator's to fix, and the answer says so rather than a bare 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from acibatch.blobstore.store import BlobForbidden, BlobStore, BlobStoreError, BlobTransient, blob_store
from acibatch.settings import current as settings
from api.common import ApiError

Result = TypeVar("Result")
STORAGE_SETTINGS = "BATCH_STORAGE_CONNECTION_STRING (Azurite or a key-based account) or BATCH_STORAGE_ACCOUNT_URL"


def storage_or_404(what: str) -> BlobStore:
    """The app's blob store; a 404 naming the settings when storage is off (`what` says what is unavailable)."""
    config = settings()
    if not config.storage_enabled:
        raise ApiError(
            404,
            "StorageNotConfigured",
            f"{what} needs blob storage, which this deployment does not have: its operator sets {STORAGE_SETTINGS}",
        )
    return blob_store(config.storage)


async def call(operation: Callable[[], Result]) -> Result:
    """Run one store operation in a thread; storage failures become 502/503 answers."""
    try:
        return await asyncio.to_thread(operation)
    except BlobTransient as error:
        raise ApiError(503, "StorageUnavailable", f"blob storage is unavailable ({error}); try again shortly") from None
    except BlobForbidden as error:
        raise ApiError(
            502, "StorageRefused", f"blob storage refused the app ({error}); its operator checks its access"
        ) from None
    except BlobStoreError as error:
        raise ApiError(502, "StorageError", f"blob storage failed: {error}") from None
