"""File activities: what the acibatch agent recorded for an attempt (its result.json), read by the task
orchestrator's poll once the attempt's container group has ended, in case the agent's report never arrived.

Only the outcome goes back into history (`AttemptResult`): the output list stays in storage for the files API.
"""

from __future__ import annotations

from typing import Any, cast

from acibatch import durable_names as names
from acibatch.blobstore.store import BlobStoreError, StorageOff, blob_store
from acibatch.messages.aci import AttemptRef, AttemptResult
from acibatch.settings import current as settings
from activities import bp


def read_result(ref: AttemptRef) -> AttemptResult:
    """The attempt's result, or none. A failed read that may work later raises, so the next poll asks again (and
    repeated failures end the attempt as unreadable); one that cannot change reads as no result."""
    try:
        document = blob_store(settings().storage).read_result(ref.tenant, ref.job_id, ref.task_id, ref.attempt)
    except StorageOff:
        return AttemptResult(False)  # storage was switched off since the job was submitted: nothing to read, ever
    except BlobStoreError as error:
        # `read_result` raises a plain BlobStoreError without a status for a blob that is not a JSON object: the
        # agent's write broke off, and reading it again gives the same bytes.
        if type(error) is BlobStoreError and error.status is None:
            return AttemptResult(False)
        raise
    return AttemptResult.from_result_json(document, ref.attempt)


# The parameter stays typed `object`: the real Python worker refuses to index an activity whose parameter is a
# dict type (see devhost/workerrules.py).
@bp.activity_trigger(input_name="payload", activity=names.READ_ATTEMPT_RESULT)
def read_attempt_result(payload: object) -> dict[str, Any]:
    return read_result(AttemptRef.parse(cast(dict[str, Any], payload))).to_dict()
