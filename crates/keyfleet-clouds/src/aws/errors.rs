//! The SDK's errors classified for the engine's retry policy: by AWS's error code, the HTTP status, or the
//! transport failure.

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};

use crate::error::{CloudError, ErrorKind};

/// Classifies an SDK error by AWS's error code, the HTTP status, or the transport failure.
pub(super) fn classify<E>(err: SdkError<E, aws_smithy_runtime_api::http::Response>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let request_id = err.raw_response().and_then(|r| r.headers().get("x-amzn-requestid")).map(str::to_string);
    CloudError { request_id, ..classify_kind(err) }
}

fn classify_kind<E>(err: SdkError<E, aws_smithy_runtime_api::http::Response>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_string);
    let message = err.message().map(str::to_string);
    match (&err, code) {
        (SdkError::TimeoutError(_), _) => CloudError::new(ErrorKind::Transient, "Timeout", "the request timed out"),
        (SdkError::DispatchFailure(_), _) => CloudError::new(
            ErrorKind::Transient,
            "ConnectionError",
            aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
        ),
        (SdkError::ConstructionFailure(_), _) => {
            CloudError::new(ErrorKind::Rejected, "RequestConstructionFailed", format!("{err}"))
        }
        (_, Some(code)) => {
            let kind = match code.as_str() {
                // KMS's LimitExceededException is a resource quota (too many keys), not a rate: not retried.
                "ThrottlingException" | "TooManyRequestsException" => ErrorKind::Throttled,
                "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "IncompleteSignature"
                | "ExpiredTokenException"
                | "MissingAuthenticationTokenException"
                | "InvalidClientTokenId"
                | "SignatureDoesNotMatch" => ErrorKind::Unauthorized,
                "NotFoundException" => ErrorKind::NotFound,
                "KMSInvalidStateException" | "DisabledException" => ErrorKind::InvalidState,
                "KMSInternalException"
                | "DependencyTimeoutException"
                | "ServiceUnavailableException"
                | "InternalFailure" => ErrorKind::Transient,
                _ if status.is_some_and(|s| s >= 500) => ErrorKind::Transient,
                _ if status == Some(429) => ErrorKind::Throttled,
                _ => ErrorKind::Rejected,
            };
            CloudError::new(kind, code, message.unwrap_or_default())
        }
        (_, None) => {
            let kind = match status {
                Some(429) => ErrorKind::Throttled,
                Some(s) if s >= 500 => ErrorKind::Transient,
                Some(401 | 403) => ErrorKind::Unauthorized,
                _ => ErrorKind::Transient,
            };
            let code = status.map(|s| format!("HTTP{s}")).unwrap_or_else(|| "ResponseError".to_string());
            CloudError::new(kind, code, message.unwrap_or_else(|| format!("{err}")))
        }
    }
}
