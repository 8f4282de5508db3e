// Uses the TypeScript types generated from Tasker's OpenAPI document by
// openapi-typescript, with openapi-fetch, the way a user would, against a
// running service with API keys on (`auth.enabled`): with the admin token it
// makes a tenant key over the API, then, as that tenant, every task type,
// typed outputs, a listing, a batch, and errors as typed values, including
// the 401, 403, 404 and 429 answers of missing, weak, foreign and hurried
// keys. Compiled with `tsc --strict` first, so a weakly typed document fails
// here before anything runs.
//
//   TASKER_ADMIN_TOKEN=tsk_... node check.js BASE_URL
//
// TASKER_ADMIN_TOKEN is an admin key's token (the service's bootstrap token).

import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Schemas = components["schemas"];
type Task = Schemas["TaskResponse"];
type Submission = Schemas["RunTaskRequest"];

// Long enough for a task to finish on a busy machine; the service caps it.
const WAIT = 30;

// The tenant this program works as; its tasks are its own.
const TENANT = "clients-check-typescript";

function check(condition: boolean, what: string): void {
  if (!condition) {
    throw new Error(`FAILED: ${what}`);
  }
  console.log(`ok  ${what}`);
}

const baseUrl = process.argv[2];
const adminToken = process.env["TASKER_ADMIN_TOKEN"];
if (!baseUrl || !adminToken) {
  throw new Error("usage: TASKER_ADMIN_TOKEN=tsk_... node check.js BASE_URL");
}

/** A client sending `Authorization: Bearer <token>` on every request. */
function asKey(token: string): Client<paths> {
  return createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });
}

const admin = asKey(adminToken);

/** A key made by the admin key; its token is in this answer only. */
async function makeKey(body: Schemas["CreateKeyRequest"]): Promise<Schemas["CreatedKeyResponse"]> {
  const { data, error, response } = await admin.POST("/keys", { body });
  if (!data) {
    throw new Error(`FAILED: POST /keys answered ${response.status}: ${JSON.stringify(error)}`);
  }
  return data;
}

const made = await makeKey({
  tenant: TENANT,
  scopes: ["submit", "read"],
  description: "clients-check: the TypeScript client",
});
check(
  made.key.tenant === TENANT &&
    [...made.key.scopes].sort().join() === "read,submit" &&
    made.token.startsWith("tsk_"),
  `POST /keys made a submit+read key of tenant ${TENANT}, with its token`,
);
const client = asKey(made.token);

async function submit(body: Submission, via: Client<paths> = client): Promise<string> {
  const { data, error } = await via.POST("/run-task", { body });
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

// No token, and one the service never made: 401, asking for a bearer token.
{
  const anonymous = createClient<paths>({ baseUrl });
  const unknownToken = asKey(`tsk_${"0".repeat(64)}`);
  for (const [anyone, what] of [
    [anonymous, "no token"],
    [unknownToken, "an unknown token"],
  ] as const) {
    const { error, response } = await anyone.GET("/tasks/{task_uuid}", {
      params: { path: { task_uuid: sum.task_uuid } },
    });
    check(response.status === 401, `${what} is 401`);
    const code: Schemas["ErrorCode"] | undefined = error?.error.code;
    check(
      code === "unauthorized" && response.headers.get("www-authenticate") === "Bearer",
      "its code is unauthorized, with WWW-Authenticate: Bearer",
    );
  }
  const { error } = await anonymous.POST("/run-task", { body: { task_name: "sum", a: 1, b: 1 } });
  check(error?.error.code === "unauthorized", "submitting with no token is unauthorized too");
}

// A read-only key reads its tenant's tasks but may not submit.
const reader = await makeKey({ tenant: TENANT, scopes: ["read"] });
{
  const readOnly = asKey(reader.token);
  const { data } = await readOnly.GET("/tasks/{task_uuid}", {
    params: { path: { task_uuid: sum.task_uuid } },
  });
  check(data?.task_uuid === sum.task_uuid, "a read-only key of the tenant reads its task");
  const { error, response } = await readOnly.POST("/run-task", {
    body: { task_name: "sum", a: 1, b: 1 },
  });
  check(response.status === 403, "it submitting is 403");
  check(
    error?.error.code === "forbidden" && error.error.message.includes("submit"),
    "its code is forbidden, naming the submit scope",
  );
  const { error: notAdmin } = await client.GET("/keys");
  check(notAdmin?.error.code === "forbidden", "a tenant key listing keys is forbidden");
}

// Another tenant's task answers exactly as an unknown one does.
{
  const foreign = await submit({ task_name: "sum", a: 4, b: 4 }, admin);
  const { error, response } = await client.GET("/tasks/{task_uuid}", {
    params: { path: { task_uuid: foreign } },
  });
  check(response.status === 404, "the tenant reading the admin tenant's task is 404");
  check(error?.error.code === "not_found", "its code is not_found");
  const { data: listed } = await client.GET("/tasks", { params: { query: { limit: 100 } } });
  check(
    listed !== undefined && !listed.tasks.some((t) => t.task_uuid === foreign),
    "nor is it in the tenant's listing",
  );
  const { data: seen } = await admin.GET("/tasks/{task_uuid}", {
    params: { path: { task_uuid: sum.task_uuid } },
  });
  check(seen?.task_uuid === sum.task_uuid, "the admin key reads the tenant's task");
}

// A key past its rate: 429 with Retry-After; nothing stored.
{
  const { token } = await makeKey({ tenant: TENANT, scopes: ["submit"], rate_per_second: 1 });
  const hurried = asKey(token);
  let limited: { code: Schemas["ErrorCode"] | undefined; retryAfter: string | null } | null = null;
  for (let i = 0; i < 5 && limited === null; i++) {
    const { error, response } = await hurried.POST("/run-task", {
      body: { task_name: "sum", a: 0, b: 0 },
    });
    if (response.status === 429) {
      limited = { code: error?.error.code, retryAfter: response.headers.get("retry-after") };
    }
  }
  check(limited !== null, "a key of 1 submission a second, 5 in a row: 429");
  check(
    limited?.code === "rate_limited" && /^\d+$/.test(limited.retryAfter ?? ""),
    "its code is rate_limited, with Retry-After",
  );
}

// The admin key lists every key, never a token; and revokes.
{
  const { data } = await admin.GET("/keys");
  if (!data) throw new Error("FAILED: GET /keys refused the admin key");
  const ids = new Set(data.keys.map((key) => key.id));
  check(
    ids.has(made.key.id) &&
      ids.has(reader.key.id) &&
      data.keys.some((key) => key.tenant === "admin" && key.scopes.includes("admin")),
    `GET /keys lists the keys made and the bootstrap key (${ids.size} keys)`,
  );
  const { data: revoked } = await admin.POST("/keys/{id}/revoke", {
    params: { path: { id: reader.key.id } },
  });
  check(
    revoked?.id === reader.key.id && typeof revoked.revoked_at === "string",
    "POST /keys/{id}/revoke answers the key, revoked",
  );
  const { error } = await admin.POST("/keys/{id}/revoke", {
    params: { path: { id: "key_0000000000000000" } },
  });
  check(error?.error.code === "not_found", "revoking an unknown key is not_found");
}

console.log("PASSED: the generated TypeScript client");
