//! The response a server sends for an [`Error`] its handler returned.
//!
//! An error the handler built ([`Error::not_found`] and its siblings) is the handler's answer:
//! it travels with its status and message, so a comms client decodes it back into the same
//! variant with the same message. Any other error is the failure of a call the handler made
//! to another service, propagated with `?`. Its details name internal services and carry their
//! words, which are not the caller's business, and its status would mislead the caller: a 401
//! from a dependency does not mean the caller's signature was refused. So only the kind of
//! failure travels, with its standard reason: a gateway status for a dependency that failed,
//! 424 Failed Dependency for one that refused the request made for this one.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};

use super::Error;

/// The response a server sends for `error`: its status, `Content-Type: application/json`, a
/// body `{"message": "..."}`, `Retry-After` (whole seconds, rounded up) when one was set
/// with [`Error::with_retry_after`], and for a 401 `WWW-Authenticate: Signature`.
///
/// | `error` | status | message |
/// |---|---|---|
/// | a status variant the handler built, 4xx or 5xx | its status | its message, else the status's reason |
/// | a status variant the handler built, any other status | 500 | its message, else `Internal Server Error` |
/// | a 4xx received from a call (it has a [`url`](super::HttpError::url)), but 401, 407, 408, 425 and 429 | 424 | `Failed Dependency` |
/// | any other status variant received from a call | 502 | `Bad Gateway` |
/// | a status variant a call's header hook failed with | 500 | `Internal Server Error` |
/// | [`Error::Transport`], [`Error::Decode`] | 502 | `Bad Gateway` |
/// | [`Error::Timeout`] | 504 | `Gateway Timeout` |
/// | [`Error::CircuitOpen`] | 503 | `Service Unavailable` |
/// | [`Error::Encode`], [`Error::Config`] | 500 | `Internal Server Error` |
///
/// A handler that means to pass a dependency's answer on builds it anew, e.g.
/// `Error::not_found(..)` when a lookup downstream found nothing. The caller sees nothing of a
/// hidden error, so the server logs `error` itself.
pub fn error_response(error: &Error) -> Response<Bytes> {
    let Served {
        status,
        message,
        details,
        retry_after,
    } = served(error);
    let message = message.or(status.canonical_reason()).unwrap_or("error");
    let mut response = json_response(status, message, details);
    if let Some(wait) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(whole_seconds(wait)));
    }
    if status == StatusCode::UNAUTHORIZED {
        // RFC 9110 §15.5.2: a 401 names the scheme that would be accepted, as the verify
        // layer's own does.
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Signature"));
    }
    response
}

/// `{"message": ...}` as JSON with `status`: how comms answers every request it refuses or
/// fails, from the verify layer, a generated server or a served error.
pub(crate) fn message_response(status: StatusCode, message: &str) -> Response<Bytes> {
    json_response(status, message, None)
}

/// A 503 with `Retry-After: 1` and `message` ([`message_response`]): the request may be
/// right, but cannot be taken now (a store that cannot answer). A comms client retries it (an
/// idempotent call) after that second, with a fresh signature and nonce.
pub(crate) fn unavailable_response(message: &str) -> Response<Bytes> {
    let mut response = message_response(StatusCode::SERVICE_UNAVAILABLE, message);
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    response
}

/// `{"message": ..., "details": ...}` as JSON with `status`, the details when there are some.
fn json_response(status: StatusCode, message: &str, details: Option<&str>) -> Response<Bytes> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        details: Option<&'a serde_json::value::RawValue>,
    }
    // The details are JSON this process wrote (`HttpError::set_details`), or read as JSON; a
    // message alone always writes.
    let details = details.and_then(|d| serde_json::from_str(d).ok());
    let body = serde_json::to_vec(&Body { message, details })
        .or_else(|_| {
            serde_json::to_vec(&Body {
                message,
                details: None,
            })
        })
        .unwrap_or_default();
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// What is sent for an error: its status, and for one the handler built, its message, details
/// and wait.
struct Served<'a> {
    status: StatusCode,
    message: Option<&'a str>,
    details: Option<&'a str>,
    retry_after: Option<Duration>,
}

/// What is sent for `error`: the one place that decides what of an error a caller is told.
fn served(error: &Error) -> Served<'_> {
    let hidden = |status| Served {
        status,
        message: None,
        details: None,
        retry_after: None,
    };
    // Every variant by name, rather than through `Error::http_error`: a new variant must be
    // given its response here.
    match error {
        Error::BadRequest(e)
        | Error::Unauthorized(e)
        | Error::Forbidden(e)
        | Error::NotFound(e)
        | Error::Conflict(e)
        | Error::UnprocessableEntity(e)
        | Error::TooManyRequests(e)
        | Error::Server(e)
        | Error::Status(e) => {
            if e.is_received() {
                return hidden(passed_on(e.status()));
            }
            if e.ended_a_call() {
                // A header hook's failure: this server's own, and none of the caller's business.
                return hidden(StatusCode::INTERNAL_SERVER_ERROR);
            }
            let status = if e.status().is_client_error() || e.status().is_server_error() {
                e.status()
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            Served {
                status,
                message: e.message(),
                details: e.details_json(),
                retry_after: e.retry_after(),
            }
        }
        Error::Transport { .. } | Error::Decode { .. } => hidden(StatusCode::BAD_GATEWAY),
        Error::Timeout { .. } => hidden(StatusCode::GATEWAY_TIMEOUT),
        Error::CircuitOpen { .. } => hidden(StatusCode::SERVICE_UNAVAILABLE),
        Error::Encode { .. } | Error::Config { .. } => hidden(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

/// What a server answers for a status a dependency answered one of its calls with, passed on
/// with `?`.
///
/// A dependency that refused the request made for this one (400, 403, 404, 409, 422, ...)
/// would refuse it again: a 424 Failed Dependency, which callers neither retry nor count
/// against the breaker, as for any 4xx. As a 502 it was retried by every caller up the chain,
/// each retry running this service's method and its call again, and it opened their breakers
/// on this service, whose other answers were fine. The dependency's failures stay a 502: a
/// 5xx, and the 4xx that are not the request's fault: 401 and 407 (this service's own
/// credentials were refused, as when its secret is not the dependency's) and 408, 425 and
/// 429 (the dependency asks for the request again later). A generated server does not keep
/// a 424 as an idempotent method's answer: the dependency may answer otherwise later.
fn passed_on(status: StatusCode) -> StatusCode {
    match status.as_u16() {
        401 | 407 | 408 | 425 | 429 => StatusCode::BAD_GATEWAY,
        400..=499 => StatusCode::FAILED_DEPENDENCY,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// `wait` in whole seconds, rounded up: a client never retries before the wait is over.
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HttpError;
    use http::Method;

    /// The status, headers and `message` of the response for `error`.
    fn sent(error: &Error) -> (u16, http::HeaderMap, String) {
        let response = error_response(error);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        let message = body["message"].as_str().unwrap().to_owned();
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        (
            response.status().as_u16(),
            response.headers().clone(),
            message,
        )
    }

    #[test]
    fn a_built_errors_details_are_sent_and_a_hidden_ones_are_not() {
        let details = serde_json::json!({ "sku": "a-1", "available": 3 });
        let built = Error::conflict("not enough").with_details(&details);
        let response = error_response(&built);
        assert_eq!(response.status(), 409);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "message": "not enough", "details": details })
        );

        // Received from a dependency, or a header hook's: neither message nor details travel.
        let received: Error = HttpError::new(StatusCode::CONFLICT)
            .with_request(Method::POST, "http://inventory/reserve")
            .with_message("inventory's words")
            .with_details(&details)
            .into();
        let hooks = Error::conflict("the hook's words")
            .with_details(&details)
            .into_hook_failure();
        for hidden in [received, hooks] {
            let body: serde_json::Value =
                serde_json::from_slice(error_response(&hidden).body()).unwrap();
            assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
            assert!(body.get("details").is_none(), "{body}");
        }
    }

    #[test]
    fn built_errors_keep_status_and_message() {
        let cases = [
            (Error::bad_request("m"), 400),
            (Error::unauthorized("m"), 401),
            (Error::forbidden("m"), 403),
            (Error::not_found("m"), 404),
            (Error::conflict("m"), 409),
            (Error::unprocessable("m"), 422),
            (Error::too_many_requests("m"), 429),
            (Error::internal("m"), 500),
            (Error::from_status(StatusCode::IM_A_TEAPOT, "m"), 418),
            (Error::from_status(StatusCode::BAD_GATEWAY, "m"), 502),
        ];
        for (error, status) in cases {
            let (sent_status, headers, message) = sent(&error);
            assert_eq!(sent_status, status, "{error}");
            assert_eq!(message, "m");
            assert_eq!(headers["content-type"], "application/json");
            assert!(!headers.contains_key("retry-after"));
        }
    }

    #[test]
    fn a_dependencys_refusal_is_a_424_and_its_failure_a_502() {
        let cases = [
            (400, 424),
            (403, 424),
            (404, 424),
            (409, 424),
            (422, 424),
            (401, 502),
            (407, 502),
            (408, 502),
            (425, 502),
            (429, 502),
            (500, 502),
            (503, 502),
            (504, 502),
            (304, 502),
        ];
        for (received, answered) in cases {
            let error: Error = HttpError::new(StatusCode::from_u16(received).unwrap())
                .with_request(Method::GET, "http://billing/invoices/7")
                .with_message("billing's words")
                .into();
            let (status, _, message) = sent(&error);
            assert_eq!(status, answered, "{received}");
            let reason = StatusCode::from_u16(answered).unwrap().canonical_reason();
            assert_eq!(Some(message.as_str()), reason, "{received}");
        }
    }

    #[test]
    fn a_message_is_json_escaped() {
        let text = "no \"user\" \\ 7\né";
        assert_eq!(sent(&Error::not_found(text)).2, text);
    }

    #[test]
    fn without_a_message_the_reason_is_sent() {
        let bare: Error = HttpError::new(StatusCode::NOT_FOUND).into();
        let (status, _, message) = sent(&bare);
        assert_eq!((status, message.as_str()), (404, "Not Found"));
        let unknown: Error = HttpError::new(StatusCode::from_u16(599).unwrap()).into();
        let (status, _, message) = sent(&unknown);
        assert_eq!((status, message.as_str()), (599, "error"));
    }

    #[test]
    fn a_built_error_with_a_success_or_redirect_status_is_a_500() {
        for status in [100, 200, 204, 302, 304] {
            let error = Error::from_status(StatusCode::from_u16(status).unwrap(), "oops");
            assert!(matches!(error, Error::Status(_)));
            let (sent_status, _, message) = sent(&error);
            assert_eq!(sent_status, 500, "{status}");
            assert_eq!(message, "oops");
        }
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        let cases = [(0, "0"), (1, "1"), (1000, "1"), (1001, "2"), (2500, "3")];
        for (ms, header) in cases {
            let error =
                Error::too_many_requests("slow").with_retry_after(Duration::from_millis(ms));
            let (status, headers, _) = sent(&error);
            assert_eq!(status, 429);
            assert_eq!(headers["retry-after"], header, "{ms} ms");
        }
        let unavailable = Error::from_status(StatusCode::SERVICE_UNAVAILABLE, "draining")
            .with_retry_after(Duration::MAX);
        let (status, headers, _) = sent(&unavailable);
        assert_eq!(status, 503);
        assert_eq!(headers["retry-after"], u64::MAX.to_string().as_str());
    }

    #[test]
    fn retry_after_round_trips_through_the_client_parser() {
        let error = Error::too_many_requests("slow").with_retry_after(Duration::from_millis(1500));
        let response = error_response(&error);
        let now = std::time::SystemTime::now();
        assert_eq!(
            crate::retry::policy::retry_after(response.headers(), now),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn failures_of_calls_the_handler_made_are_hidden() {
        const INTERNAL: &str = "http://ledger.internal:9000/accounts/7";
        let received = |status| -> Error {
            HttpError::from_response(
                StatusCode::from_u16(status).unwrap(),
                Method::GET,
                INTERNAL.into(),
                br#"{"message": "ledger secret detail"}"#,
            )
            .into()
        };
        let cases = [
            (received(401), 502, "Bad Gateway"),
            (received(404), 424, "Failed Dependency"),
            (
                received(429).with_retry_after(Duration::from_secs(1)),
                502,
                "Bad Gateway",
            ),
            (received(503), 502, "Bad Gateway"),
            (
                Error::Transport {
                    method: Method::GET,
                    url: INTERNAL.into(),
                    connect: true,
                    source: "connection refused".into(),
                },
                502,
                "Bad Gateway",
            ),
            (
                Error::Decode {
                    method: Some(Method::GET),
                    url: Some(INTERNAL.into()),
                    source: "expected value".into(),
                },
                502,
                "Bad Gateway",
            ),
            (
                Error::Timeout {
                    method: Method::GET,
                    url: INTERNAL.into(),
                    after: Duration::from_secs(1),
                },
                504,
                "Gateway Timeout",
            ),
            (
                Error::CircuitOpen {
                    authority: "http://ledger.internal:9000".into(),
                    retry_in: Duration::from_secs(3),
                },
                503,
                "Service Unavailable",
            ),
            (
                Error::encode(format!("header of {INTERNAL}")),
                500,
                "Internal Server Error",
            ),
            (
                Error::config("LEDGER_URL", INTERNAL),
                500,
                "Internal Server Error",
            ),
        ];
        for (error, status, reason) in cases {
            let response = error_response(&error);
            let text = format!("{response:?} {:?}", response.body());
            assert!(!text.contains("ledger"), "{error}: {text}");
            let (sent_status, headers, message) = sent(&error);
            assert_eq!((sent_status, message.as_str()), (status, reason), "{error}");
            assert_eq!(headers["content-type"], "application/json");
            assert!(!headers.contains_key("retry-after"), "{error}");
        }
    }
}
