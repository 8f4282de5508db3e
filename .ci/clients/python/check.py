"""Uses the Python client generated from Tasker's OpenAPI document the way a
user would, against a running service with API keys on (`auth.enabled`):
with the admin token it makes a tenant key over the API, then, as that
tenant, every task type, typed outputs, a listing, a batch, and errors as
typed values, including the 401, 403, 404 and 429 answers of missing,
weak, foreign and hurried keys.

    TASKER_ADMIN_TOKEN=tsk_... python check.py BASE_URL

TASKER_ADMIN_TOKEN is an admin key's token (the service's bootstrap token).
The generated package (`tasker_client`) must be importable. Type-checked
with `mypy --strict` before it runs, so a weakly typed client fails here.
"""

from __future__ import annotations

import datetime
import os
import sys
from uuid import UUID, uuid4

import httpx
from tasker_client import AuthenticatedClient
from tasker_client.api.keys import create_key, list_keys, revoke_key
from tasker_client.api.tasks import (
    create_task,
    create_tasks,
    get_task,
    get_task_output,
    list_tasks,
)
from tasker_client.models import (
    Algorithm,
    ApiKey,
    CreatedKeyResponse,
    CreateKeyRequest,
    ErrorCode,
    ErrorResponse,
    FileHashOutput,
    FileHashTask,
    FileHashTaskResponse,
    KeyList,
    QueryLlmTask,
    QueryLlmTaskResponse,
    RunTaskResponse,
    RunTasksRequest,
    RunTasksResponse,
    Scope,
    SumOutput,
    SumTask,
    SumTaskResponse,
    TaskPage,
    TaskStatus,
)

Task = FileHashTaskResponse | QueryLlmTaskResponse | SumTaskResponse

# Long enough for a task to finish on a busy machine; the service caps it.
WAIT = 30.0

# The tenant this program works as; its tasks are its own.
TENANT = "clients-check-python"


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok  {what}")


def submit(client: AuthenticatedClient, body: SumTask | FileHashTask | QueryLlmTask) -> UUID:
    accepted = create_task.sync(client=client, body=body)
    assert isinstance(accepted, RunTaskResponse), accepted
    return accepted.task_uuid


def finished(client: AuthenticatedClient, task_uuid: UUID) -> Task:
    """The task once it has finished (`wait` holds the read until then)."""
    for _ in range(10):
        task = get_task.sync(task_uuid, client=client, wait=WAIT)
        assert not isinstance(task, ErrorResponse) and task is not None, task
        if task.status in (TaskStatus.COMPLETED, TaskStatus.FAILED):
            return task
    raise SystemExit(f"FAILED: task {task_uuid} did not finish")


def make_key(admin: AuthenticatedClient, request: CreateKeyRequest) -> CreatedKeyResponse:
    made = create_key.sync(client=admin, body=request)
    assert isinstance(made, CreatedKeyResponse), made
    return made


def as_key(base_url: str, token: str) -> AuthenticatedClient:
    """A client sending `Authorization: Bearer <token>` on every request."""
    return AuthenticatedClient(base_url=base_url, token=token, raise_on_unexpected_status=True)


def main(base_url: str, admin_token: str) -> None:
    admin = as_key(base_url, admin_token)

    # The admin key makes the tenant's key; its token is in this answer only.
    made = make_key(
        admin,
        CreateKeyRequest(
            tenant=TENANT,
            scopes=[Scope.SUBMIT, Scope.READ],
            description="clients-check: the Python client",
        ),
    )
    check(
        made.key.tenant == TENANT
        and sorted(made.key.scopes) == [Scope.READ, Scope.SUBMIT]
        and made.token.startswith("tsk_"),
        f"POST /keys made a submit+read key of tenant {TENANT}, with its token",
    )
    client = as_key(base_url, made.token)

    # Each task type; `task_name` is filled in by the constructor.
    task = finished(client, submit(client, SumTask(a=1, b=2)))
    check(isinstance(task, SumTaskResponse), "sum answers a SumTaskResponse")
    assert isinstance(task, SumTaskResponse)
    check(task.status == TaskStatus.COMPLETED, "sum completes")
    check(isinstance(task.task_output, SumOutput), "its task_output is a SumOutput")
    assert isinstance(task.task_output, SumOutput)
    check(task.task_output.result == 3, "1 + 2: result == 3")
    check(task.error is None and task.completed_at is not None, "error null, completed_at set")

    hashed = finished(
        client, submit(client, FileHashTask(content="hello world", algorithm=Algorithm.MD5))
    )
    assert isinstance(hashed, FileHashTaskResponse), hashed
    assert isinstance(hashed.task_output, FileHashOutput), hashed.task_output
    check(
        hashed.task_output.digest == "5eb63bbbe01eeed093cb22bb8f5acdc3"
        and hashed.task_output.algorithm == Algorithm.MD5
        and hashed.task_output.size_bytes == 11,
        "file_hash: the md5 of 'hello world', 11 bytes",
    )

    # The service under test has no LLM key: the task fails, saying which.
    llm = finished(client, submit(client, QueryLlmTask(prompt="Say hello.", max_tokens=16)))
    assert isinstance(llm, QueryLlmTaskResponse), llm
    check(
        llm.status == TaskStatus.FAILED
        and llm.task_output is None
        and isinstance(llm.error, str)
        and "api_key" in llm.error,
        "query_llm without a key fails with an error naming the key",
    )

    # The query-string read answers the same typed task.
    again = get_task_output.sync(client=client, task_uuid=task.task_uuid)
    check(
        isinstance(again, SumTaskResponse) and again.task_uuid == task.task_uuid,
        "GET /get-task-output answers the same SumTaskResponse",
    )

    # Listing, newest first, with a cursor.
    page = list_tasks.sync(client=client, limit=2)
    assert isinstance(page, TaskPage), page
    check(len(page.tasks) == 2, "a page of 2 tasks")
    check(isinstance(page.tasks[0], QueryLlmTaskResponse), "newest first: the query_llm task")
    check(isinstance(page.next_cursor, str), "next_cursor names the next page")
    assert isinstance(page.next_cursor, str)
    rest = list_tasks.sync(client=client, limit=2, cursor=page.next_cursor)
    assert isinstance(rest, TaskPage), rest
    # Tasks of earlier runs against the same service may follow.
    check(
        [t.task_uuid for t in rest.tasks[:1]] == [task.task_uuid],
        "the next page starts with the sum task",
    )
    sums = list_tasks.sync(client=client, task_name="sum")
    assert isinstance(sums, TaskPage), sums
    check(all(isinstance(t, SumTaskResponse) for t in sums.tasks), "filtered by task_name")

    # A batch: ids in the order given, each task typed by its name.
    batch = create_tasks.sync(
        client=client,
        body=RunTasksRequest(tasks=[SumTask(a=2, b=3), FileHashTask(content="abc")]),
    )
    assert isinstance(batch, RunTasksResponse), batch
    check(len(batch.task_uuids) == 2, "a batch of 2 accepted")
    first, second = (finished(client, task_uuid) for task_uuid in batch.task_uuids)
    check(
        isinstance(first, SumTaskResponse)
        and isinstance(first.task_output, SumOutput)
        and first.task_output.result == 5,
        "batch item 0: 2 + 3 == 5",
    )
    check(
        isinstance(second, FileHashTaskResponse)
        and isinstance(second.task_output, FileHashOutput)
        and second.task_output.algorithm == Algorithm.SHA256,
        "batch item 1: sha256 by default",
    )

    # Errors are typed values with a closed set of codes.
    missing = get_task.sync_detailed(uuid4(), client=client)
    check(missing.status_code == 404, "an unknown id is 404")
    assert isinstance(missing.parsed, ErrorResponse), missing.parsed
    check(missing.parsed.error.code == ErrorCode.NOT_FOUND, "its code is not_found")

    refused = create_task.sync_detailed(client=client, body=QueryLlmTask(prompt="   "))
    check(refused.status_code == 422, "a blank prompt is 422")
    assert isinstance(refused.parsed, ErrorResponse), refused.parsed
    details = refused.parsed.error.details
    check(
        refused.parsed.error.code == ErrorCode.VALIDATION_FAILED
        and details is not None
        and details["field"] == "prompt",
        "its code is validation_failed, naming the field",
    )

    no_id = get_task_output.sync_detailed(client=client)
    check(no_id.status_code == 422, "GET /get-task-output without an id is 422")
    assert isinstance(no_id.parsed, ErrorResponse), no_id.parsed
    check("task_uuid" in no_id.parsed.error.message, "its message names task_uuid")

    check_keys(base_url, admin, client, made.key, task.task_uuid)

    print("PASSED: the generated Python client")


def check_keys(
    base_url: str,
    admin: AuthenticatedClient,
    client: AuthenticatedClient,
    tenant_key: ApiKey,
    tenant_task: UUID,
) -> None:
    """Missing, weak, foreign and hurried keys get typed errors."""
    # No token, and one the service never made: 401, asking for a bearer
    # token. The generated functions take only an AuthenticatedClient; given
    # an httpx client of one's own, it sends no Authorization header at all.
    anonymous = as_key(base_url, "").set_httpx_client(httpx.Client(base_url=base_url))
    unknown_token = as_key(base_url, "tsk_" + "0" * 64)
    for anyone, what in ((anonymous, "no token"), (unknown_token, "an unknown token")):
        refused = get_task.sync_detailed(tenant_task, client=anyone)
        check(refused.status_code == 401, f"{what} is 401")
        assert isinstance(refused.parsed, ErrorResponse), refused.parsed
        check(
            refused.parsed.error.code == ErrorCode.UNAUTHORIZED
            and refused.headers.get("www-authenticate") == "Bearer",
            "its code is unauthorized, with WWW-Authenticate: Bearer",
        )
    submitted = create_task.sync(client=anonymous, body=SumTask(a=1, b=1))
    check(
        isinstance(submitted, ErrorResponse) and submitted.error.code == ErrorCode.UNAUTHORIZED,
        "submitting with no token is unauthorized too",
    )

    # A read-only key reads its tenant's tasks but may not submit.
    reader = make_key(admin, CreateKeyRequest(tenant=TENANT, scopes=[Scope.READ]))
    read_only = as_key(base_url, reader.token)
    seen = get_task.sync(tenant_task, client=read_only)
    check(
        isinstance(seen, SumTaskResponse) and seen.task_uuid == tenant_task,
        "a read-only key of the tenant reads its task",
    )
    forbidden = create_task.sync(client=read_only, body=SumTask(a=1, b=1))
    assert isinstance(forbidden, ErrorResponse), forbidden
    check(
        forbidden.error.code == ErrorCode.FORBIDDEN and "submit" in forbidden.error.message,
        "it submitting is forbidden, naming the submit scope",
    )
    not_admin = list_keys.sync(client=client)
    check(
        isinstance(not_admin, ErrorResponse) and not_admin.error.code == ErrorCode.FORBIDDEN,
        "a tenant key listing keys is forbidden",
    )

    # Another tenant's task answers exactly as an unknown one does.
    foreign = submit(admin, SumTask(a=4, b=4))
    hidden = get_task.sync_detailed(foreign, client=client)
    check(hidden.status_code == 404, "the tenant reading the admin tenant's task is 404")
    assert isinstance(hidden.parsed, ErrorResponse), hidden.parsed
    check(hidden.parsed.error.code == ErrorCode.NOT_FOUND, "its code is not_found")
    listed = list_tasks.sync(client=client, limit=100)
    assert isinstance(listed, TaskPage), listed
    check(foreign not in {t.task_uuid for t in listed.tasks}, "nor is it in the tenant's listing")
    # The admin key reads every tenant's tasks.
    check(
        isinstance(get_task.sync(tenant_task, client=admin), SumTaskResponse),
        "the admin key reads the tenant's task",
    )

    # A key past its rate: 429 with Retry-After; nothing stored.
    hurried = as_key(
        base_url,
        make_key(
            admin,
            CreateKeyRequest(tenant=TENANT, scopes=[Scope.SUBMIT], rate_per_second=1),
        ).token,
    )
    answers = [create_task.sync_detailed(client=hurried, body=SumTask(a=0, b=0)) for _ in range(5)]
    limited = next((a for a in answers if a.status_code == 429), None)
    check(limited is not None, "a key of 1 submission a second, 5 in a row: 429")
    assert limited is not None and isinstance(limited.parsed, ErrorResponse), limited
    check(
        limited.parsed.error.code == ErrorCode.RATE_LIMITED
        and limited.headers.get("retry-after", "").isdigit(),
        "its code is rate_limited, with Retry-After",
    )

    # The admin key lists every key, never a token; and revokes.
    keys = list_keys.sync(client=admin)
    assert isinstance(keys, KeyList), keys
    ids = {key.id for key in keys.keys}
    check(
        {tenant_key.id, reader.key.id} <= ids
        and any(key.tenant == "admin" and Scope.ADMIN in key.scopes for key in keys.keys),
        f"GET /keys lists the keys made and the bootstrap key ({len(ids)} keys)",
    )
    revoked = revoke_key.sync(reader.key.id, client=admin)
    check(
        isinstance(revoked, ApiKey) and isinstance(revoked.revoked_at, datetime.datetime),
        "POST /keys/{id}/revoke answers the key, revoked",
    )
    unknown = revoke_key.sync("key_0000000000000000", client=admin)
    check(
        isinstance(unknown, ErrorResponse) and unknown.error.code == ErrorCode.NOT_FOUND,
        "revoking an unknown key is not_found",
    )


if __name__ == "__main__":
    token = os.environ.get("TASKER_ADMIN_TOKEN", "")
    if len(sys.argv) != 2 or not token:
        raise SystemExit(__doc__)
    main(sys.argv[1], token)
