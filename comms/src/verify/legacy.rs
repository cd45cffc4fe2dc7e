//! The legacy (`microservice_comms`) check of a request head: `X-Service-ID`, `X-Timestamp` and
//! an HMAC over `METHOD|path|timestamp` in `X-Signature`, tried with every key of the named
//! service. Only a verifier told to [accept legacy](Verifier::accept_legacy) runs it.

use http::{HeaderMap, Method, Uri};

use super::error::quoted;
use super::{VerifiedHead, Verifier, VerifyError, single};
use crate::signing::{self, Signing};

impl Verifier {
    pub(super) fn verify_legacy(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        now: u64,
    ) -> Result<VerifiedHead<'_>, VerifyError> {
        let service_id = single(headers, &signing::SERVICE_ID_HEADER)?;
        let signature = single(headers, &signing::LEGACY_SIGNATURE_HEADER)?;
        let timestamp_text = single(headers, &signing::TIMESTAMP_HEADER)?;
        let timestamp = parse_timestamp(timestamp_text)?;
        self.check_skew(timestamp, now)?;
        let keys = self
            .keys
            .by_service
            .get(service_id)
            .filter(|keys| !keys.is_empty())
            .ok_or_else(|| VerifyError::UnknownService(quoted(service_id)))?;
        let mut mac = [0u8; 32];
        if !is_lower_hex(signature, 64) || hex::decode_to_slice(signature, &mut mac).is_err() {
            return Err(VerifyError::MalformedHeader(
                signing::LEGACY_SIGNATURE_HEADER,
            ));
        }
        let method_text = method.as_str().to_ascii_uppercase();
        let path = uri.path();
        // The Python client signs the path its caller gave it, before encoding what is left to
        // encode: the decoded path for a caller that wrote `/items/a b`, and the path as sent
        // for one that encoded it already (`/items/a%20b`, which it sends as written). Both
        // readings are tried where each names one resource only.
        let as_sent = path
            .contains('%')
            .then(|| signing::legacy_string_to_sign_as_sent(&method_text, path, timestamp));
        let decoded = if signing::holds_encoded_slash(path) {
            // `/files/a%2Fb` (one segment, `a/b`) and `/files/a/b` (two) decode alike: a
            // captured request could be sent to the other route.
            Err(VerifyError::EncodedSlashInLegacyPath)
        } else if signing::decodes_to_escape(path) {
            // `/items/a%2520b` decodes to `/items/a%20b`, what a caller that encoded `a b`
            // itself signed: its signature would pass for the resource `a%20b`.
            Err(VerifyError::EncodedEscapeInLegacyPath)
        } else {
            Ok(signing::legacy_string_to_sign(
                &method_text,
                path,
                timestamp,
            ))
        };
        // The Python client signs `GET||<ts>` for a bare base URL, sent as `/`.
        let bare =
            (path == "/").then(|| signing::legacy_string_to_sign(&method_text, "", timestamp));
        let candidates = [as_sent.as_ref(), decoded.as_ref().ok(), bare.as_ref()];
        let key = keys.iter().find(|key| {
            candidates
                .iter()
                .flatten()
                .any(|signed| key.signer.verify(|m| hmac::Mac::update(m, signed), &mac))
        });
        let Some(key) = key else {
            return Err(decoded.err().unwrap_or(VerifyError::BadSignature));
        };
        Ok(VerifiedHead {
            verifier: self,
            key: key.clone(),
            signing: Signing::Legacy,
            nonce: None,
            others: Vec::new(),
            digest: None,
            count_use: true,
            recorded_in_front: false,
            // A legacy signature covers no header: its deadline, trace context and idempotency
            // key are taken as sent.
            covers_deadline: true,
            covers_trace: true,
            covered: None,
            turn: None,
        })
    }
}

/// `X-Timestamp`: Unix seconds in decimal, as the Python client writes them. The string to
/// sign is rebuilt from the number, so only the one way of writing it is taken: with a leading
/// zero, the signature checked would be over a timestamp that was not the one sent.
fn parse_timestamp(text: &str) -> Result<u64, VerifyError> {
    let padded = text.len() > 1 && text.starts_with('0');
    if padded || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedHeader(signing::TIMESTAMP_HEADER));
    }
    text.parse()
        .map_err(|_| VerifyError::MalformedHeader(signing::TIMESTAMP_HEADER))
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_timestamps() {
        for bad in [
            "",
            "+1",
            "-1",
            "1.5",
            "99999999999999999999",
            " 1",
            "01700000000",
            "00",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_timestamp("1700000000").unwrap(), 1_700_000_000);
    }
}
