//! Who may call what, in the document: the bearer scheme and the 401,
//! 403 and 429 answers it adds, and the bodies of the bulk actions.

use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required};

use crate::domain::Scope;
use crate::http::routes::needs;

/// The bearer scheme, offered on every operation of the `tasks` and
/// `keys` tags (and required by them when `auth.enabled`), with the answers it adds: 401 without
/// a valid key, 403 without the scope, 429 past a key's rate.
pub(super) fn secure_task_operations(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API key's token (`tsk_…`), when the service runs with `auth.enabled`.",
                ))
                .build(),
        ),
    );
    let error = |description: &str, code: &str, message: &str| {
        let example =
            serde_json::json!({"error": {"code": code, "message": message, "details": null}});
        utoipa::openapi::ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorResponse")))
                    .example(Some(example))
                    .build(),
            )
            .build()
    };
    let unauthorized = error(
        "No API key, or one that is unknown, revoked or expired (with `auth.enabled`)",
        "unauthorized",
        "an API key is required: send `Authorization: Bearer <token>`",
    );
    let forbidden = |scope: &str| {
        error(
            &format!("The API key lacks the `{scope}` scope this needs"),
            "forbidden",
            &format!("this API key lacks the `{scope}` scope"),
        )
    };
    let invalid_json = error(
        "The body is not JSON",
        "invalid_json",
        "malformed JSON: EOF while parsing a value at line 1 column 0",
    );
    let too_large = error(
        "Body larger than `api.max_body_bytes`",
        "payload_too_large",
        "request body is larger than the limit of 1048576 bytes",
    );
    let rate_limited = error(
        "The API key's submission rate is spent; `Retry-After` says when to try again",
        "rate_limited",
        "this API key's rate limit is reached; retry after 400 ms",
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [("get", item.get.as_mut()), ("post", item.post.as_mut())];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let tags = operation.tags.clone().unwrap_or_default();
            if !tags
                .iter()
                .any(|t| t == "tasks" || t == "keys" || t == "queues")
            {
                continue;
            }
            // Optional in the document: without `auth.enabled` no key is
            // needed, and generated clients must not insist on one.
            operation.security = Some(vec![
                SecurityRequirement::new("bearer", Vec::<String>::new()),
                SecurityRequirement::default(),
            ]);
            let scope = required_scope(operation.operation_id.as_deref());
            let has_body = operation.request_body.is_some();
            let responses = &mut operation.responses.responses;
            responses.insert("401".into(), RefOr::T(unauthorized.clone()));
            if let Some(scope) = scope {
                let mut forbidden = forbidden(scope.as_str());
                // A handler that declares its own 403 knows more of why (key
                // management is refused with auth off, whatever the key).
                if let Some(RefOr::T(own)) = responses.get("403") {
                    forbidden.description = own.description.clone();
                }
                responses.insert("403".into(), RefOr::T(forbidden));
            }
            if has_body {
                // Every body is read the same way (see `extract::JsonBody`).
                responses
                    .entry("400".into())
                    .or_insert_with(|| RefOr::T(invalid_json.clone()));
                responses
                    .entry("413".into())
                    .or_insert_with(|| RefOr::T(too_large.clone()));
            }
            if method == "post" && (path == "/run-task" || path == "/run-tasks") {
                responses.insert("429".into(), RefOr::T(rate_limited.clone()));
            }
        }
    }
}

/// The bodies of the bulk actions: `BulkFilter` with the statuses each
/// action applies to (`CancelFilter`, `RetryFilter`), naming at least one
/// filter or `"all": true`, so an empty body cannot act on every task by
/// accident.
pub(super) fn bulk_filters(doc: &mut utoipa::openapi::OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(filter))) = components.schemas.remove("BulkFilter") else {
        return;
    };
    let all = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Boolean))
        .enum_values(Some([true]))
        .description(Some(
            "`true`: act on every task the action applies to, with no other filter.",
        ))
        .build();
    for (name, path, statuses) in [
        ("CancelFilter", "/tasks/cancel", ["pending", "running"]),
        ("RetryFilter", "/tasks/retry", ["failed", "cancelled"]),
    ] {
        let mut schema = filter.clone();
        schema.min_properties = Some(1);
        schema.properties.insert("all".into(), all.clone().into());
        let status = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(statuses))
            .description(Some("Only tasks in this status."))
            .build();
        schema.properties.insert("status".into(), status.into());
        components
            .schemas
            .insert(name.to_owned(), Schema::Object(schema).into());
        if let Some(operation) = doc
            .paths
            .paths
            .get_mut(path)
            .and_then(|item| item.post.as_mut())
        {
            let body = RequestBodyBuilder::new()
                .description(Some("Which tasks: the listing's filters."))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(name)))
                        .build(),
                )
                .required(Some(Required::True))
                .build();
            operation.request_body = Some(RefOr::T(body));
        }
    }
}

/// The scope operation `id` needs: what its handler requires (see
/// `routes::needs`); `None` for an operation that takes no key.
fn required_scope(id: Option<&str>) -> Option<Scope> {
    let id = id?;
    needs::BY_OPERATION
        .iter()
        .find_map(|(operation, scope)| (*operation == id).then_some(*scope))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation that takes a key documents the scope its handler
    /// requires: one in `routes::needs`, and the one the `Scope` docs promise
    /// (reads `read`, submissions and one task's cancel or retry `submit`,
    /// bulk actions, queues and keys `admin`).
    #[test]
    fn each_operation_documents_the_scope_its_handler_requires() {
        let expected = [
            ("create_task", Scope::Submit),
            ("create_tasks", Scope::Submit),
            ("get_task_output", Scope::Read),
            ("get_task", Scope::Read),
            ("get_task_submission", Scope::Read),
            ("list_tasks", Scope::Read),
            ("cancel_task", Scope::Submit),
            ("retry_task", Scope::Submit),
            ("cancel_tasks", Scope::Admin),
            ("retry_tasks", Scope::Admin),
            ("list_queues", Scope::Admin),
            ("pause_queue", Scope::Admin),
            ("resume_queue", Scope::Admin),
            ("create_key", Scope::Admin),
            ("list_keys", Scope::Admin),
            ("revoke_key", Scope::Admin),
        ];
        for (operation, scope) in expected {
            assert_eq!(required_scope(Some(operation)), Some(scope), "{operation}");
        }
        assert_eq!(needs::BY_OPERATION.len(), expected.len());
        assert_eq!(required_scope(Some("health")), None);
        assert_eq!(required_scope(None), None);
    }

    /// The operations that take a key in the document are those `needs`
    /// declares a scope for, and each answers 403 naming it.
    #[test]
    fn every_secured_operation_has_a_declared_scope() {
        let config = crate::config::Config::default();
        let Ok(registry) = crate::tasks::Registry::new(&config) else {
            panic!("the default registry builds");
        };
        let doc = super::super::document(&registry, &config.api);
        let mut secured = Vec::new();
        for item in doc.paths.paths.values() {
            for operation in [&item.get, &item.post].into_iter().flatten() {
                if operation.security.is_none() {
                    continue;
                }
                let id = operation.operation_id.clone().unwrap_or_default();
                let scope = required_scope(Some(&id));
                let Some(scope) = scope else {
                    panic!("{id} takes a key but `needs` declares no scope for it");
                };
                let Some(RefOr::T(forbidden)) = operation.responses.responses.get("403") else {
                    panic!("{id} documents no 403");
                };
                let said = serde_json::to_string(forbidden).unwrap_or_default();
                assert!(
                    said.contains(&format!("`{}` scope", scope.as_str())),
                    "{id}: {said}"
                );
                secured.push(id);
            }
        }
        secured.sort();
        let mut declared: Vec<&str> = needs::BY_OPERATION.iter().map(|(id, _)| *id).collect();
        declared.sort_unstable();
        assert_eq!(secured, declared);
    }
}
