//! Route table.

mod console;
mod control;
mod docs;
mod keys;
mod read;
mod submit;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::AppState;
use super::error::ApiError;

pub(super) use control::{
    __path_cancel_task, __path_cancel_tasks, __path_list_queues, __path_pause_queue,
    __path_resume_queue, __path_retry_task, __path_retry_tasks, BulkFilter, CancelledCount,
    QueueListResponse, QueueView, RetriedCount,
};
pub(super) use keys::{
    __path_create_key, __path_list_keys, __path_revoke_key, CreateKeyRequest, CreatedKeyResponse,
    ListKeysResponse,
};
pub(super) use read::{
    __path_get_task, __path_get_task_output, __path_get_task_submission, __path_list_tasks,
    CACHE_HEADER,
};
pub(super) use submit::{__path_create_task, __path_create_tasks};

/// Declares the scope each operation needs, once: its handler requires
/// `needs::<operation>`, and the document (`openapi::security`) shows the
/// scope of `needs::BY_OPERATION`, keyed by operation id (the handler's
/// name), so the two cannot disagree.
macro_rules! declare_scopes {
    ($($operation:ident: $scope:ident),+ $(,)?) => {
        /// The scope each operation needs (see `declare_scopes!`).
        #[allow(non_upper_case_globals)]
        pub(super) mod needs {
            use crate::domain::Scope;

            $(pub(crate) const $operation: Scope = Scope::$scope;)+

            /// (operation id, scope) of every operation that takes an API key.
            pub(crate) const BY_OPERATION: &[(&str, Scope)] =
                &[$((stringify!($operation), $operation)),+];
        }
    };
}

declare_scopes! {
    create_task: Submit,
    create_tasks: Submit,
    get_task_output: Read,
    get_task: Read,
    get_task_submission: Read,
    list_tasks: Read,
    cancel_task: Submit,
    retry_task: Submit,
    cancel_tasks: Admin,
    retry_tasks: Admin,
    list_queues: Admin,
    pause_queue: Admin,
    resume_queue: Admin,
    create_key: Admin,
    list_keys: Admin,
    revoke_key: Admin,
}

/// The task API: every route here needs an API key when `auth` is on.
pub(super) fn tasks() -> Router<AppState> {
    Router::new()
        .route("/run-task", post(submit::create_task))
        .route("/run-tasks", post(submit::create_tasks))
        .route("/get-task-output", get(read::get_task_output))
        .route("/tasks", get(read::list_tasks))
        .route("/tasks/{task_uuid}", get(read::get_task))
        .route(
            "/tasks/{task_uuid}/submission",
            get(read::get_task_submission),
        )
        .route("/tasks/{task_uuid}/cancel", post(control::cancel_task))
        .route("/tasks/{task_uuid}/retry", post(control::retry_task))
        .route("/tasks/cancel", post(control::cancel_tasks))
        .route("/tasks/retry", post(control::retry_tasks))
        .route("/queues", get(control::list_queues))
        .route("/queues/{name}/pause", post(control::pause_queue))
        .route("/queues/{name}/resume", post(control::resume_queue))
        .route("/keys", post(keys::create_key).get(keys::list_keys))
        .route("/keys/{id}/revoke", post(keys::revoke_key))
}

/// Pages and documents anyone may read.
pub(super) fn public() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs::docs))
        .route("/docs/", get(docs::docs_slash))
        .route(docs::SCRIPT_ROUTE, get(docs::scalar_js))
        .route(docs::INIT_ROUTE, get(docs::init_js))
        .route("/console", get(console::console))
        .route("/console/", get(console::console_slash))
        .route(console::SCRIPT_ROUTE, get(console::script))
        .route(console::STYLE_ROUTE, get(console::stylesheet))
}

pub(super) async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub(super) async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json.as_str().to_owned(),
    )
        .into_response()
}
