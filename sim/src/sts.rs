//! STS `AssumeRole` (query protocol, `POST /`), so targets with `aws_assume_role_arn` run end to
//! end against the simulator: the request is SigV4-verified for service `sts`, and the temporary
//! key pair and session token it returns are then accepted for Bedrock calls.

use std::fmt::Write;

use actix_web::{HttpRequest, HttpResponse, web};
use percent_encoding::percent_decode_str;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::SimKey;
use super::state::SimState;
use sigv4_verify::{self as sigv4, AuthError, RegionPolicy};

/// STS's signing name.
const SERVICE: &str = "sts";
const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

pub async fn assume_role(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<SimState>,
) -> HttpResponse {
    let headers = sigv4::header_list(req.headers());
    let signed = sigv4::Request::of(&req, &headers);
    // STS is global: callers sign for whichever region their SDK is configured with.
    let verified = sigv4::check_head_for(
        SERVICE,
        &signed,
        |id| state.key(id),
        RegionPolicy::Any,
        OffsetDateTime::now_utc(),
    )
    .and_then(|head| head.check_body(&signed, &body));
    if let Err(e) = verified {
        state.stats.bad_signature();
        return error(403, auth_code(&e), &e.to_string());
    }
    let form = parse_form(&String::from_utf8_lossy(&body));
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if field("Action") != Some("AssumeRole") {
        return error(400, "InvalidAction", "only AssumeRole is simulated");
    }
    let (Some(role_arn), Some(session_name)) = (field("RoleArn"), field("RoleSessionName")) else {
        return error(
            400,
            "MissingParameter",
            "RoleArn and RoleSessionName are required",
        );
    };
    let key = SimKey {
        access_key_id: format!("ASIA{:016X}", fastrand::u64(..)),
        secret_access_key: format!("{:032x}", fastrand::u128(..)),
        session_token: Some(format!("sim-session-{:032x}", fastrand::u128(..))),
    };
    let expiration = (OffsetDateTime::now_utc() + state.sts_session)
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default();
    let mut xml = String::with_capacity(1024);
    let _ = write!(
        xml,
        "<AssumeRoleResponse xmlns=\"{XMLNS}\"><AssumeRoleResult><Credentials>\
         <AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey>\
         <SessionToken>{}</SessionToken><Expiration>{expiration}</Expiration></Credentials>\
         <AssumedRoleUser><Arn>{}/{}</Arn><AssumedRoleId>AROASIMULATOR:{}</AssumedRoleId>\
         </AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>{:032x}</RequestId>\
         </ResponseMetadata></AssumeRoleResponse>",
        key.access_key_id,
        key.secret_access_key,
        key.session_token.as_deref().unwrap_or_default(),
        escape(role_arn),
        escape(session_name),
        escape(session_name),
        fastrand::u128(..),
    );
    state.add_key(key);
    state.stats.assumed_role(session_name);
    HttpResponse::Ok().content_type("text/xml").body(xml)
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space).
fn parse_form(body: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn auth_code(error: &AuthError) -> &'static str {
    match error {
        AuthError::Missing => "MissingAuthenticationToken",
        AuthError::UnknownKey | AuthError::BadSessionToken => "InvalidClientTokenId",
        AuthError::Expired(_) => "RequestExpired",
        AuthError::Malformed(_)
        | AuthError::WrongRegion(_)
        | AuthError::WrongService(_)
        | AuthError::ContentHashMismatch
        | AuthError::SignatureMismatch => "SignatureDoesNotMatch",
    }
}

fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(status)
        .content_type("text/xml")
        .body(format!(
            "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>Sender</Type><Code>{code}</Code>\
         <Message>{}</Message></Error><RequestId>{:032x}</RequestId></ErrorResponse>",
            escape(message),
            fastrand::u128(..)
        ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_percent_and_plus() {
        assert_eq!(
            parse_form(
                "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fx&RoleSessionName=a+b"
            ),
            vec![
                ("Action".to_owned(), "AssumeRole".to_owned()),
                ("RoleArn".to_owned(), "arn:aws:iam::1:role/x".to_owned()),
                ("RoleSessionName".to_owned(), "a b".to_owned()),
            ]
        );
    }
}
