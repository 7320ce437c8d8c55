"""A job's `resourceFiles` and `outputFiles` (Azure Batch's names and shapes), with what a client reads when they
are wrong.

Resource files are downloaded into the task's working directory before its command runs; output files are
uploaded after it ends. The agent (`agent/`) does both inside the task's container group; this module only decides
what a valid entry is and its normalised form (defaults filled), which `acibatch.plan.TaskInput` carries. URLs a
tenant gives may hold its own SAS: `redact_url` is how any answer shows them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints, WrapValidator

from acibatch.jobfields import Url, choice_hint
from acibatch.models.base import ApiModel, Checked, Hint, Problem, RequestContext, current_request, problem
from acibatch.outbound import LOCAL_NAMES, OutboundRefused, Scheme, check_url

MAX_RESOURCE_FILES = 100  # per list: the job's, and each task's
MAX_OUTPUT_FILES = 20
MAX_PATH_CHARS = 1024  # Azure Blob's limit on a blob name
MAX_CONTAINER_NAME_CHARS = 63
DEFAULT_FILE_MODE = "0770"  # Azure Batch's default on Linux
# Test these with fullmatch (see jobfields.ID_RULE).
CONTAINER_NAME_RULE = re.compile(r"^[a-z0-9](?:-?[a-z0-9])*$")
FILE_MODE_RULE = re.compile(r"^0?[0-7]{3}$")
STORAGE_SETTINGS = "BATCH_STORAGE_CONNECTION_STRING or BATCH_STORAGE_ACCOUNT_URL"
STORAGE_OFF = (
    "needs blob storage, which this deployment does not have: the operator sets "
    f"{STORAGE_SETTINGS} in the app settings (or remove resourceFiles and outputFiles)"
)


class UploadCondition(StrEnum):
    """When an output file is uploaded, by how the task's command ended."""

    TASK_SUCCESS = "taskSuccess"
    TASK_FAILURE = "taskFailure"
    TASK_COMPLETION = "taskCompletion"


class SourceKind(StrEnum):
    """A resource file's source: exactly one per entry."""

    HTTP_URL = "httpUrl"
    STORAGE_CONTAINER_URL = "storageContainerUrl"
    AUTO_STORAGE_CONTAINER_NAME = "autoStorageContainerName"


def redact_url(url: str) -> str:
    """`url` as an answer may show it: a query string (a tenant's SAS) becomes `?...`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="...", fragment="")) if parts.query or parts.fragment else url


def _relative_path(what: str) -> Callable[[str], str]:
    """A check for a path relative to a root the agent owns (the working directory, an output prefix)."""

    def check(value: str) -> str:
        if not value:
            raise problem(f"must not be empty; give a relative {what}")
        if value.startswith("/"):
            raise problem(f"must be a relative {what} (no leading '/')")
        if "\\" in value:
            raise problem("must use '/' between directories (no backslashes)")
        if ".." in value.split("/"):
            raise problem(f"must not contain '..': a {what} stays inside its root")
        return value

    return check


def _path_hint(what: str) -> Callable[[Any], str]:
    def message(value: Any) -> str:
        if value is None:  # only a required one is ever missing
            return f"is required: a {what} relative to the task's working directory, like out/*.csv"
        return f"must be a string of at most {MAX_PATH_CHARS} characters with no NUL"

    return message


PATH_CHARS = StringConstraints(max_length=MAX_PATH_CHARS, pattern="^[^\\x00]*$")


def _file_mode(value: str) -> str:
    return value if len(value) == 4 else f"0{value}"  # one spelling for the agent: "644" is "0644"


def _tenant_url(value: Any, handler: Callable[[Any], str | None]) -> str | None:
    """A storage URL a tenant gives: the app's outbound rules (https to public hosts, unless the operator allows
    more), and plain http only to this machine (an emulator such as Azurite): elsewhere it would expose the SAS."""
    request = current_request()
    if request is not None and request.outbound is not None and value is not None:
        try:
            target = check_url(value, request.outbound)
        except OutboundRefused as refused:
            raise problem(str(refused)) from None
        local = target.host in LOCAL_NAMES or (target.literal is not None and target.literal.is_loopback)
        if target.scheme is Scheme.HTTP and not local:
            raise problem("must be an https URL: plain http is allowed only for a local emulator (127.0.0.1)")
    return handler(value)


TenantUrl = Annotated[Url, WrapValidator(_tenant_url)]
RelativeFilePath = Annotated[
    str, PATH_CHARS, Hint(_path_hint("file path")), AfterValidator(_relative_path("file path"))
]
FilePattern = Annotated[
    str, PATH_CHARS, Hint(_path_hint("file pattern")), AfterValidator(_relative_path("file pattern"))
]
BlobPath = Annotated[str, PATH_CHARS, Hint(_path_hint("blob path")), AfterValidator(_relative_path("blob path"))]
ContainerName = Annotated[
    str,
    StringConstraints(max_length=MAX_CONTAINER_NAME_CHARS, pattern=CONTAINER_NAME_RULE.pattern),
    Hint(
        f"must be 1-{MAX_CONTAINER_NAME_CHARS} lowercase letters, digits and single '-' between them, "
        "the name given to `acibatch upload NAME`"
    ),
]
BlobPrefix = Annotated[
    str,
    PATH_CHARS,
    Hint(f"must be a string of at most {MAX_PATH_CHARS} characters with no NUL"),
]
FileMode = Annotated[
    str,
    StringConstraints(pattern=FILE_MODE_RULE.pattern),
    Hint("must be an octal mode string like '0770' or '644'"),
    AfterValidator(_file_mode),
]


def _one_source(schema: dict[str, Any]) -> None:
    """The rules across a resource file's fields that JSON Schema can state."""
    schema["oneOf"] = [{"required": [str(kind)]} for kind in SourceKind]
    schema["dependentRequired"] = {SourceKind.HTTP_URL.value: ["filePath"]}
    schema["if"] = {"required": [SourceKind.HTTP_URL.value]}
    schema["then"] = {"not": {"required": ["blobPrefix"]}}


class ResourceFile(ApiModel):
    """One input: give exactly one of httpUrl, storageContainerUrl or autoStorageContainerName. A container form
    downloads every blob under `blobPrefix` into `filePath` (default: the working directory), keeping the blob
    tree."""

    model_config = ConfigDict(json_schema_extra=_one_source)

    NOT_AN_OBJECT = 'must be an object like {"httpUrl": "https://...", "filePath": "data/in.csv"}'
    OMIT_WHEN_DEFAULT = frozenset({*SourceKind, "blobPrefix", "filePath"})
    PROBLEM_ORDER = ("",)

    http_url: Annotated[TenantUrl | None, Field(description="a file to download; needs filePath")] = None
    storage_container_url: Annotated[
        TenantUrl | None,
        Field(description="a blob container URL with a SAS granting read and list; shown as '?...' in answers"),
    ] = None
    auto_storage_container_name: Annotated[
        ContainerName | None, Field(description="files the tenant uploaded with `PUT /api/storage/{name}/...`")
    ] = None
    blob_prefix: Annotated[BlobPrefix | None, Field(description="container forms only: the blobs to download")] = None
    file_path: Annotated[
        RelativeFilePath | None,
        Field(description="relative to the task's working directory: the file (httpUrl) or the directory"),
    ] = None
    file_mode: Annotated[FileMode, Field(description="octal permissions of the downloaded files")] = DEFAULT_FILE_MODE

    @classmethod
    def request_problems(
        cls, raw: dict[str, Any], data: dict[str, Any], request: RequestContext
    ) -> tuple[dict[str, Any], list[Problem]]:
        sources = [str(kind) for kind in SourceKind if raw.get(kind) is not None]
        problems: list[Problem] = []
        if len(sources) != 1:
            given = f" (got {' and '.join(sources)})" if sources else ""
            problems.append(((), f"must give exactly one of {', '.join(SourceKind)}{given}"))
        if SourceKind.HTTP_URL in sources:
            if raw.get("filePath") is None:
                problems.append(
                    (("filePath",), "is required with httpUrl: the path, relative to the working directory, to save to")
                )
            if raw.get("blobPrefix") is not None:
                problems.append((("blobPrefix",), "applies only to a container source; remove it with httpUrl"))
        return data, problems


class OutputContainer(ApiModel):
    NOT_AN_OBJECT = 'must be an object like {"path": "results"} or {"containerUrl": "https://...?SAS"}'
    OMIT_WHEN_DEFAULT = frozenset({"containerUrl", "path"})

    container_url: Annotated[
        TenantUrl | None,
        Field(
            description="a blob container URL with a SAS granting create and write; default: the tenant's own "
            "container, under jobs/{job}/tasks/{task}/outputs/"
        ),
    ] = None
    path: Annotated[
        BlobPath | None,
        Field(
            description="blob name (one matched file) or prefix (a pattern); relative to the default prefix, or "
            "to the root of containerUrl"
        ),
    ] = None


class OutputDestination(ApiModel):
    NOT_AN_OBJECT = 'must be an object like {"container": {"path": "results"}}'

    container: OutputContainer = Field(default_factory=OutputContainer)


class UploadOptions(ApiModel):
    NOT_AN_OBJECT = 'must be an object like {"uploadCondition": "taskSuccess"}'

    upload_condition: Annotated[UploadCondition, Hint(choice_hint(UploadCondition))] = UploadCondition.TASK_COMPLETION


class OutputFile(ApiModel):
    """Files to upload once the command ends: `filePattern` relative to the working directory, with `*`, `**`,
    `?` and `[...]` (a dotfile matches only a pattern that names its dot)."""

    NOT_AN_OBJECT = 'must be an object like {"filePattern": "out/*.csv"}'

    file_pattern: Annotated[FilePattern, Field(examples=["out/**/*.csv"])]
    destination: OutputDestination = Field(default_factory=OutputDestination)
    upload_options: UploadOptions = Field(default_factory=UploadOptions)


def _counted(limit: int, kind: str) -> Callable[[Any], list[Problem]]:
    def check(value: Any) -> list[Problem]:
        if isinstance(value, list) and len(value) > limit:
            return [((), f"has {len(value)} {kind}; at most {limit} are allowed")]
        return []

    return check


def _list_schema(limit: int) -> Callable[[dict[str, Any]], None]:
    def extra(schema: dict[str, Any]) -> None:
        schema["maxItems"] = limit  # counted by `_counted`, whose message names the count

    return extra


ResourceFiles = Annotated[
    tuple[ResourceFile, ...],
    Field(json_schema_extra=_list_schema(MAX_RESOURCE_FILES)),
    Checked(
        _counted(MAX_RESOURCE_FILES, "resource files"),
        by_item=True,
        own_hint='must be a list of objects like {"httpUrl": "https://...", "filePath": "in.csv"}',
    ),
]
OutputFiles = Annotated[
    tuple[OutputFile, ...],
    Field(json_schema_extra=_list_schema(MAX_OUTPUT_FILES)),
    Checked(
        _counted(MAX_OUTPUT_FILES, "output files"),
        by_item=True,
        own_hint='must be a list of objects like {"filePattern": "out/*.csv"}',
    ),
]
FILE_FIELDS = ("resourceFiles", "outputFiles")


def lists_files(value: Any) -> bool:
    """Whether a raw job or task object names any resource or output file (a non-empty list)."""
    return isinstance(value, dict) and any(isinstance(value.get(name), list) and value[name] for name in FILE_FIELDS)


def storage_off_problems(raw: Any) -> list[tuple[str, str]]:
    """`(path, message)` for each place a raw job spec moves files, when the app has no blob storage."""
    if not isinstance(raw, dict):
        return []
    found = [name for name in FILE_FIELDS if lists_files({name: raw.get(name)})]
    tasks = raw.get("tasks")
    if isinstance(tasks, list):
        found.extend(f"tasks[{index}]" for index, task in enumerate(tasks) if lists_files(task))
    if not found:
        return []
    more = f" (and {len(found) - 1} more places)" if len(found) > 1 else ""
    return [(found[0], f"{STORAGE_OFF}{more}")]


def _redacted_entry(entry: dict[str, Any]) -> dict[str, Any]:
    found = {**entry}
    for name in (SourceKind.HTTP_URL, SourceKind.STORAGE_CONTAINER_URL):
        if isinstance(found.get(name), str):
            found[name] = redact_url(found[name])
    container = found.get("destination", {}).get("container", {})
    if isinstance(container.get("containerUrl"), str):
        container = {**container, "containerUrl": redact_url(container["containerUrl"])}
        found["destination"] = {**found["destination"], "container": container}
    return found


def _redacted_lists(holder: dict[str, Any]) -> dict[str, Any]:
    if not any(holder.get(name) for name in FILE_FIELDS):
        return holder
    return {
        **holder,
        **{name: [_redacted_entry(entry) for entry in holder[name]] for name in FILE_FIELDS if holder.get(name)},
    }


def redact_job_files(job: dict[str, Any]) -> dict[str, Any]:
    """A job spec's canonical JSON as an answer may show it: every URL a tenant gave for its files, with its SAS
    (the query string) replaced by `?...`. The stored spec keeps them: the agent needs them."""
    found = _redacted_lists(job)
    tasks = found.get("tasks")
    if isinstance(tasks, list) and any(lists_files(task) for task in tasks):
        found["tasks"] = [_redacted_lists(task) for task in tasks]
    return found
