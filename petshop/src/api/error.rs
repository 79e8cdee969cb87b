//! The one API error type, and the conversion of every other error to the same JSON.
//!
//! Status rules:
//! * 400: the request cannot be read (malformed JSON, a body that is not an object);
//! * 422: a named field or query/path parameter is missing, mistyped or out of range
//!   (`field` names it), or the parameters contradict each other (`min_age > max_age`);
//! * 401/403: admin token wrong / admin endpoints disabled (`ADMIN_TOKEN` unset), or
//!   Redis refuses the flush to the service's user (its ACL lacks `SCAN`: `NOPERM`);
//! * 404: unknown pet or route; 405: wrong method; 413: body over 64 KiB;
//!   415: body not sent as `application/json`;
//! * 429: the client is over `RATE_LIMIT` (`Retry-After` and the `RateLimit-*` headers);
//! * 500: anything internal: logged with details, answered without them;
//! * 503: a strict write (`CACHE_WRITE_CONSISTENCY=strict`) while Redis cannot be told,
//!   with `Retry-After`; the database is unreachable or the instance drains (`/ready`).

use poem::Response;
use poem::http::StatusCode;
use poem_openapi::error::{
    ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError,
};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Object, serde::Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// The request field or parameter at fault; absent when the error is not about one.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub field: Option<String>,
}

impl ErrorBody {
    fn new(error: impl Into<String>, field: Option<&str>) -> Json<Self> {
        Json(Self {
            error: error.into(),
            field: field.map(str::to_owned),
        })
    }
}

/// Every error a handler returns.
#[derive(ApiResponse, Debug)]
pub enum ApiError {
    /// The request cannot be read.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing or wrong admin token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Admin endpoints are disabled (`ADMIN_TOKEN` unset), or Redis refuses the flush
    /// to the service's user (`NOPERM`: its ACL lacks `SCAN`).
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such pet.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The request body is over 64 KiB.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The request body is not sent as `application/json` (or has no `Content-Type`).
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// A field or parameter is invalid.
    #[oai(status = 422)]
    Invalid(Json<ErrorBody>),
    /// Too many requests from this client (`RATE_LIMIT`): its window is used up. Retry
    /// after the given seconds.
    #[oai(status = 429)]
    TooManyRequests(
        Json<ErrorBody>,
        /// Seconds until the client's window ends (at least 1).
        #[oai(header = "Retry-After")]
        u64,
        /// Requests a client may send per window.
        #[oai(header = "RateLimit-Limit")]
        u64,
        /// Requests left in the current window (0 here).
        #[oai(header = "RateLimit-Remaining")]
        u64,
        /// Seconds until the current window ends, rounded up.
        #[oai(header = "RateLimit-Reset")]
        u64,
    ),
    /// Something failed inside the service.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The write was refused before the database was touched: with
    /// `CACHE_WRITE_CONSISTENCY=strict`, a write needs Redis to be told first, and Redis
    /// does not answer. Nothing was written; retry after the given seconds.
    #[oai(status = 503)]
    Unavailable(
        Json<ErrorBody>,
        /// Seconds until a retry may succeed.
        #[oai(header = "Retry-After")]
        String,
    ),
}

impl ApiError {
    /// 422 naming `field`.
    pub fn invalid(field: Option<&str>, msg: impl Into<String>) -> Self {
        Self::Invalid(ErrorBody::new(msg, field))
    }

    /// 404.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::NotFound(ErrorBody::new(msg, None))
    }

    /// 401.
    pub fn unauthorized(msg: impl Into<String>) -> Self {
        Self::Unauthorized(ErrorBody::new(msg, None))
    }

    /// 403.
    pub fn forbidden(msg: impl Into<String>) -> Self {
        Self::Forbidden(ErrorBody::new(msg, None))
    }

    /// 500: `err` is logged, the client sees a generic message.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::Internal(ErrorBody::new("internal server error", None))
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::internal(format_args!("database: {e}"))
    }
}

impl From<cache::CacheError> for ApiError {
    fn from(e: cache::CacheError) -> Self {
        match e {
            cache::CacheError::WriteRefused { retry_after } => Self::Unavailable(
                ErrorBody::new(
                    "the cache cannot be told about this write now (Redis is unreachable); nothing was written, retry later",
                    None,
                ),
                retry_after.as_secs_f64().ceil().max(1.0).to_string(),
            ),
            e => Self::internal(format_args!("cache/loader: {e}")),
        }
    }
}

impl From<crate::service::pets::ServiceError> for ApiError {
    fn from(e: crate::service::pets::ServiceError) -> Self {
        use crate::service::pets::ServiceError;
        match e {
            ServiceError::Database(e) => e.into(),
            ServiceError::Cache(e) => e.into(),
            ServiceError::Task(e) => Self::internal(format_args!("write task: {e}")),
        }
    }
}

/// A JSON error response.
#[must_use]
pub fn json_error(status: StatusCode, error: impl Into<String>, field: Option<&str>) -> Response {
    let mut json = serde_json::json!({ "error": error.into() });
    if let Some(field) = field {
        json["field"] = field.into();
    }
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(json.to_string())
}

/// The field named in a poem-openapi message: "field `age` …" → `age`.
fn field_in(msg: &str) -> Option<&str> {
    let start = msg.find("field `")? + "field `".len();
    let len = msg[start..].find('`')?;
    Some(&msg[start..start + len])
}

/// The real name of a path parameter: poem-openapi registers `/pets/{id}` as
/// `/pets/:param0`, so its errors say `param0`; `route` (the spec's template) has the name.
fn path_param_name<'a>(route: &'a str, name: &'a str) -> &'a str {
    name.strip_prefix("param")
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|n| {
            route
                .split('/')
                .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
                .nth(n)
        })
        .unwrap_or(name)
}

/// Any error raised while serving a request on `route` (the spec's path template, if
/// known), as the API's JSON error.
#[must_use]
pub fn to_json_response(err: poem::Error, route: &str) -> Response {
    if err.is_from_response() {
        // Our own ApiError, or a response someone built on purpose: already final.
        return err.into_response();
    }
    let status = err.status();
    if let Some(e) = err.downcast_ref::<ParseParamError>() {
        return json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            e.to_string(),
            Some(e.name),
        );
    }
    if let Some(e) = err.downcast_ref::<ParsePathError>() {
        let name = path_param_name(route, e.name);
        return json_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("failed to parse path `{name}`: {}", e.reason),
            Some(name),
        );
    }
    if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        return match field_in(&e.reason) {
            Some(field) => json_error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string(), Some(field)),
            None if e.reason.starts_with("failed to parse") => {
                json_error(StatusCode::BAD_REQUEST, e.to_string(), None)
            }
            None => json_error(
                StatusCode::BAD_REQUEST,
                format!("malformed JSON: {}", e.reason),
                None,
            ),
        };
    }
    if err.is::<ContentTypeError>() {
        return json_error(status, err.to_string(), None);
    }
    if status == StatusCode::NOT_FOUND {
        return json_error(status, "no such route", None);
    }
    if status.is_server_error() {
        tracing::error!(error = %err, "unhandled error");
        return json_error(status, "internal server error", None);
    }
    json_error(status, err.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_is_found_in_poem_openapi_messages() {
        assert_eq!(
            field_in(r#"failed to parse "NewPet": field `age` verification failed. maximum(100)"#),
            Some("age")
        );
        assert_eq!(field_in("unknown field `colour`."), Some("colour"));
        assert_eq!(field_in("expected value at line 1"), None);
    }

    #[test]
    fn path_parameters_get_their_names_back() {
        assert_eq!(path_param_name("/pets/{id}", "param0"), "id");
        assert_eq!(path_param_name("/a/{x}/b/{y}", "param1"), "y");
        assert_eq!(path_param_name("unmatched", "param0"), "param0");
        assert_eq!(path_param_name("/pets/{id}", "id"), "id");
    }
}
