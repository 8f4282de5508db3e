"""Uses the Python client generated from Tasker's OpenAPI document the way a
user would, against a running service: every task type, typed outputs, a
listing, a batch, and errors as typed values.

    python check.py BASE_URL

The generated package (`tasker_client`) must be importable. Type-checked
with `mypy --strict` before it runs, so a weakly typed client fails here.
"""

from __future__ import annotations

import sys
from uuid import UUID, uuid4

from tasker_client import Client
from tasker_client.api.tasks import (
    create_task,
    create_tasks,
    get_task,
    get_task_output,
    list_tasks,
)
from tasker_client.models import (
    Algorithm,
    ErrorCode,
    ErrorResponse,
    FileHashOutput,
    FileHashTask,
    FileHashTaskResponse,
    QueryLlmTask,
    QueryLlmTaskResponse,
    RunTaskResponse,
    RunTasksRequest,
    RunTasksResponse,
    SumOutput,
    SumTask,
    SumTaskResponse,
    TaskPage,
    TaskStatus,
)

Task = FileHashTaskResponse | QueryLlmTaskResponse | SumTaskResponse

# Long enough for a task to finish on a busy machine; the service caps it.
WAIT = 30.0


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok  {what}")


def submit(client: Client, body: SumTask | FileHashTask | QueryLlmTask) -> UUID:
    accepted = create_task.sync(client=client, body=body)
    assert isinstance(accepted, RunTaskResponse), accepted
    return accepted.task_uuid


def finished(client: Client, task_uuid: UUID) -> Task:
    """The task once it has finished (`wait` holds the read until then)."""
    for _ in range(10):
        task = get_task.sync(task_uuid, client=client, wait=WAIT)
        assert not isinstance(task, ErrorResponse) and task is not None, task
        if task.status in (TaskStatus.COMPLETED, TaskStatus.FAILED):
            return task
    raise SystemExit(f"FAILED: task {task_uuid} did not finish")


def main(base_url: str) -> None:
    client = Client(base_url=base_url, raise_on_unexpected_status=True)

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

    print("PASSED: the generated Python client")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
