// Uses the TypeScript types generated from Tasker's OpenAPI document by
// openapi-typescript, with openapi-fetch, the way a user would, against a
// running service: every task type, typed outputs, a listing, a batch, and
// errors as typed values. Compiled with `tsc --strict` first, so a weakly
// typed document fails here before anything runs.
//
//   node check.js BASE_URL

import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Schemas = components["schemas"];
type Task = Schemas["TaskResponse"];
type Submission = Schemas["RunTaskRequest"];

// Long enough for a task to finish on a busy machine; the service caps it.
const WAIT = 30;

function check(condition: boolean, what: string): void {
  if (!condition) {
    throw new Error(`FAILED: ${what}`);
  }
  console.log(`ok  ${what}`);
}

const baseUrl = process.argv[2];
if (!baseUrl) {
  throw new Error("usage: node check.js BASE_URL");
}
const client = createClient<paths>({ baseUrl });

async function submit(body: Submission): Promise<string> {
  const { data, error } = await client.POST("/run-task", { body });
  if (!data) {
    throw new Error(`submission refused: ${JSON.stringify(error)}`);
  }
  return data.task_uuid;
}

/** The task once it has finished (`wait` holds the read until then). */
async function finished(taskUuid: string): Promise<Task> {
  for (let i = 0; i < 10; i++) {
    const { data, error } = await client.GET("/tasks/{task_uuid}", {
      params: { path: { task_uuid: taskUuid }, query: { wait: WAIT } },
    });
    if (!data) {
      throw new Error(`read failed: ${JSON.stringify(error)}`);
    }
    if (data.status === "completed" || data.status === "failed") {
      return data;
    }
  }
  throw new Error(`FAILED: task ${taskUuid} did not finish`);
}

// Each task type.
const sum = await finished(await submit({ task_name: "sum", a: 1, b: 2 }));
check(sum.task_name === "sum", "sum answers a sum task");
if (sum.task_name !== "sum") throw new Error("unreachable");
// Narrowed by task_name: task_output is SumOutput | null, nothing looser.
const sumOutput: Schemas["SumOutput"] | null = sum.task_output;
// @ts-expect-error a sum's output has no digest: narrowing is real.
void sum.task_output?.digest;
check(sum.status === "completed", "sum completes");
check(sumOutput?.result === 3, "1 + 2: result === 3");
check(sum.error === null && sum.completed_at !== null, "error null, completed_at set");

const hashed = await finished(
  await submit({ task_name: "file_hash", content: "hello world", algorithm: "md5" }),
);
if (hashed.task_name !== "file_hash") throw new Error("FAILED: not a file_hash task");
check(
  hashed.task_output?.digest === "5eb63bbbe01eeed093cb22bb8f5acdc3" &&
    hashed.task_output.algorithm === "md5" &&
    hashed.task_output.size_bytes === 11,
  "file_hash: the md5 of 'hello world', 11 bytes",
);

// The service under test has no LLM key: the task fails, saying which.
const llm = await finished(
  await submit({ task_name: "query_llm", prompt: "Say hello.", max_tokens: 16 }),
);
if (llm.task_name !== "query_llm") throw new Error("FAILED: not a query_llm task");
const llmOutput: Schemas["QueryLlmOutput"] | null = llm.task_output;
check(
  llm.status === "failed" && llmOutput === null && (llm.error ?? "").includes("api_key"),
  "query_llm without a key fails with an error naming the key",
);

// The query-string read answers the same typed task.
{
  const { data } = await client.GET("/get-task-output", {
    params: { query: { task_uuid: sum.task_uuid } },
  });
  check(
    data?.task_name === "sum" && data.task_output?.result === 3,
    "GET /get-task-output answers the same sum task",
  );
}

// Listing, newest first, with a cursor.
{
  const { data: page } = await client.GET("/tasks", { params: { query: { limit: 2 } } });
  if (!page) throw new Error("FAILED: no page");
  check(page.tasks.length === 2, "a page of 2 tasks");
  check(page.tasks[0]?.task_name === "query_llm", "newest first: the query_llm task");
  const cursor: string | null = page.next_cursor;
  check(cursor !== null, "next_cursor names the next page");
  const { data: rest } = await client.GET("/tasks", {
    params: { query: { limit: 2, cursor: cursor ?? undefined } },
  });
  // Tasks of earlier runs against the same service may follow.
  check(rest?.tasks[0]?.task_uuid === sum.task_uuid, "the next page starts with the sum task");
  const { data: sums } = await client.GET("/tasks", {
    params: { query: { task_name: "sum" } },
  });
  check(sums?.tasks.every((t) => t.task_name === "sum") ?? false, "filtered by task_name");
}

// A batch: ids in the order given, each task typed by its name.
{
  const { data, error } = await client.POST("/run-tasks", {
    body: { tasks: [{ task_name: "sum", a: 2, b: 3 }, { task_name: "file_hash", content: "abc" }] },
  });
  if (!data) throw new Error(`FAILED: batch refused: ${JSON.stringify(error)}`);
  check(data.task_uuids.length === 2, "a batch of 2 accepted");
  const [first, second] = await Promise.all(data.task_uuids.map(finished));
  check(
    first?.task_name === "sum" && first.task_output?.result === 5,
    "batch item 0: 2 + 3 === 5",
  );
  check(
    second?.task_name === "file_hash" && second.task_output?.algorithm === "sha256",
    "batch item 1: sha256 by default",
  );
}

// Errors are typed values with a closed set of codes.
{
  const { error, response } = await client.GET("/tasks/{task_uuid}", {
    params: { path: { task_uuid: crypto.randomUUID() } },
  });
  check(response.status === 404, "an unknown id is 404");
  const code: Schemas["ErrorCode"] | undefined = error?.error.code;
  check(code === "not_found", "its code is not_found");
}
{
  const { error, response } = await client.POST("/run-task", {
    body: { task_name: "query_llm", prompt: "   " },
  });
  check(response.status === 422, "a blank prompt is 422");
  check(
    error?.error.code === "validation_failed" && error.error.details?.["field"] === "prompt",
    "its code is validation_failed, naming the field",
  );
}
{
  const { error, response } = await client.GET("/get-task-output", { params: { query: {} } });
  check(response.status === 422, "GET /get-task-output without an id is 422");
  check(error?.error.message.includes("task_uuid") ?? false, "its message names task_uuid");
}

console.log("PASSED: the generated TypeScript client");
