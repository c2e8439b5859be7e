//! User delegation SAS: a key from `Get User Delegation Key` (Entra ID auth only), and a
//! read-only container SAS signed with it. Used by deployarm to hand Azure Resource Manager
//! a short-lived link to staged templates; no account key is involved.

use std::time::{Duration, SystemTime};

use azure_core::http::RequestContent;
use azure_storage_blob::{BlobServiceClient, BlobServiceClientOptions};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use task_sdk::{HttpClient, TaskError};

use crate::auth::{iso8601, Account};
use crate::store::describe;
use crate::transport;

/// The longest a user delegation key may live (the service refuses more).
pub const MAX_KEY_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The storage service version the SAS is signed for (the 2020-12-06 string-to-sign).
const SAS_VERSION: &str = "2021-08-06";

/// A user delegation key, with the fields exactly as the service sent them (they are part of
/// what is signed). `Debug` hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct UserDelegationKey {
    pub signed_oid: String,
    pub signed_tid: String,
    pub signed_start: String,
    pub signed_expiry: String,
    pub signed_service: String,
    pub signed_version: String,
    /// Base64, as sent.
    pub value: String,
}

impl std::fmt::Debug for UserDelegationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDelegationKey")
            .field("signed_oid", &self.signed_oid)
            .field("signed_expiry", &self.signed_expiry)
            .finish_non_exhaustive()
    }
}

/// The text of the first `<tag>…</tag>` in `xml` (the key's answer is flat, without
/// attributes or namespaces).
fn tag<'x>(xml: &'x str, tag: &str) -> Option<&'x str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim())
}

/// Parses the `UserDelegationKey` answer.
pub fn parse_key(xml: &str) -> Option<UserDelegationKey> {
    let get = |t: &str| tag(xml, t).map(str::to_owned);
    Some(UserDelegationKey {
        signed_oid: get("SignedOid")?,
        signed_tid: get("SignedTid")?,
        signed_start: get("SignedStart")?,
        signed_expiry: get("SignedExpiry")?,
        signed_service: get("SignedService")?,
        signed_version: get("SignedVersion")?,
        value: get("Value")?,
    })
}

/// `POST ?restype=service&comp=userdelegationkey` for `[start, expiry]`, through the SDK with
/// the account's auth (which must be Entra ID: the service refuses keys and SAS here). The
/// key's value is registered as a secret.
pub async fn user_delegation_key(
    account: &Account,
    http: &HttpClient,
    start: SystemTime,
    expiry: SystemTime,
) -> Result<UserDelegationKey, TaskError> {
    let options = BlobServiceClientOptions {
        client_options: transport::client_options(http, account.auth.clone()),
        ..Default::default()
    };
    let client = BlobServiceClient::new(account.service_url.clone(), None, Some(options))
        .map_err(|e| TaskError::new(format!("cannot set up the blob client: {e}")))?;
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><KeyInfo><Start>{}</Start><Expiry>{}</Expiry></KeyInfo>",
        iso8601(start),
        iso8601(expiry)
    );
    let doing = "get a user delegation key";
    let response = client
        .get_user_delegation_key(RequestContent::from_str(&body), None)
        .await
        .map_err(|e| TaskError::new(describe(&e, doing, "(account)")))?;
    let bytes = response.into_body();
    let text = String::from_utf8_lossy(bytes.as_ref());
    let key = parse_key(&text).ok_or_else(|| {
        TaskError::new(format!(
            "cannot {doing}: the storage account's answer is not a UserDelegationKey"
        ))
    })?;
    task_sdk::secrets::register(&key.value);
    Ok(key)
}

/// What a SAS made from a user delegation key grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SasSpec<'a> {
    /// The storage account's name (part of the signed resource).
    pub account: &'a str,
    pub container: &'a str,
    /// `sp`, in the service's canonical order (e.g. `r`, `rl`).
    pub permissions: &'a str,
    pub start: SystemTime,
    pub expiry: SystemTime,
    /// `spr=https`.
    pub https_only: bool,
}

/// A container-scoped (`sr=c`) user delegation SAS, as a query string without `?`. The
/// string-to-sign is the one of service version 2020-12-06 and later.
pub fn container_sas(key: &UserDelegationKey, spec: &SasSpec<'_>) -> Result<String, TaskError> {
    use base64::Engine as _;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(key.value.trim())
        .map_err(|_| {
            TaskError::new("the user delegation key from the storage account is not base64")
        })?;
    let (start, expiry) = (iso8601(spec.start), iso8601(spec.expiry));
    let protocol = if spec.https_only { "https" } else { "" };
    let resource = format!("/blob/{}/{}", spec.account, spec.container);
    let to_sign = [
        spec.permissions,
        &start,
        &expiry,
        &resource,
        &key.signed_oid,
        &key.signed_tid,
        &key.signed_start,
        &key.signed_expiry,
        &key.signed_service,
        &key.signed_version,
        "", // signedAuthorizedUserObjectId
        "", // signedUnauthorizedUserObjectId
        "", // signedCorrelationId
        "", // signedIP
        protocol,
        SAS_VERSION,
        "c",
        "", // signedSnapshotTime
        "", // signedEncryptionScope
        "", // rscc
        "", // rscd
        "", // rsce
        "", // rscl
        "", // rsct
    ]
    .join("\n");
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).expect("HMAC takes any key length");
    mac.update(to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("sv", SAS_VERSION)
        .append_pair("sr", "c")
        .append_pair("sp", spec.permissions)
        .append_pair("st", &start)
        .append_pair("se", &expiry);
    if spec.https_only {
        query.append_pair("spr", "https");
    }
    query
        .append_pair("skoid", &key.signed_oid)
        .append_pair("sktid", &key.signed_tid)
        .append_pair("skt", &key.signed_start)
        .append_pair("ske", &key.signed_expiry)
        .append_pair("sks", &key.signed_service)
        .append_pair("skv", &key.signed_version)
        .append_pair("sig", &signature);
    let sas = query.finish();
    register_sas(&sas);
    Ok(sas)
}

/// A SAS, and its signature alone in both spellings (errors may quote either).
pub fn register_sas(sas: &str) {
    task_sdk::secrets::register(sas);
    for (name, value) in url::form_urlencoded::parse(sas.as_bytes()) {
        if name == "sig" {
            task_sdk::secrets::register(&value);
            let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
            task_sdk::secrets::register(&encoded);
        }
    }
}

/// The account name of a blob service URL: the host's first label
/// (`acc.blob.core.windows.net`), or the first path segment of an emulator's path-style URL
/// (`http://127.0.0.1:10000/devstoreaccount1/`).
pub fn account_name(service_url: &url::Url) -> Option<String> {
    let path_style = match service_url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(_) => true,
        None => return None,
    };
    if path_style {
        service_url
            .path_segments()?
            .find(|s| !s.is_empty())
            .map(str::to_owned)
    } else {
        service_url
            .host_str()?
            .split('.')
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn key() -> UserDelegationKey {
        parse_key(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><UserDelegationKey><SignedOid>oid-1</SignedOid><SignedTid>tid-1</SignedTid><SignedStart>2026-01-01T00:00:00Z</SignedStart><SignedExpiry>2026-01-02T00:00:00Z</SignedExpiry><SignedService>b</SignedService><SignedVersion>2025-11-05</SignedVersion><Value>a2V5LWJ5dGVz</Value></UserDelegationKey>",
        )
        .unwrap()
    }

    #[test]
    fn keys_parse_and_hide_their_value() {
        let k = key();
        assert_eq!(k.signed_oid, "oid-1");
        assert_eq!(k.signed_start, "2026-01-01T00:00:00Z");
        assert_eq!(k.value, "a2V5LWJ5dGVz");
        assert!(!format!("{k:?}").contains("a2V5"));
        assert!(parse_key("<Error/>").is_none());
    }

    #[test]
    fn container_sas_is_read_only_and_signed_over_the_documented_fields() {
        let start = UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01T00:00:00Z
        let spec = SasSpec {
            account: "acc",
            container: "c1",
            permissions: "r",
            start,
            expiry: start + Duration::from_secs(3600),
            https_only: true,
        };
        let sas = container_sas(&key(), &spec).unwrap();
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(sas.as_bytes())
            .into_owned()
            .collect();
        let get = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("sr"), Some("c"));
        assert_eq!(get("sp"), Some("r"));
        assert_eq!(get("spr"), Some("https"));
        assert_eq!(get("se"), Some("2026-01-01T01:00:00Z"));
        assert_eq!(get("skoid"), Some("oid-1"));
        assert_eq!(get("skv"), Some("2025-11-05"));
        // The signature over the 2020-12-06 string-to-sign, computed independently.
        let to_sign = "r\n2026-01-01T00:00:00Z\n2026-01-01T01:00:00Z\n/blob/acc/c1\noid-1\ntid-1\n2026-01-01T00:00:00Z\n2026-01-02T00:00:00Z\nb\n2025-11-05\n\n\n\n\nhttps\n2021-08-06\nc\n\n\n\n\n\n\n";
        use base64::Engine as _;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key-bytes").unwrap();
        mac.update(to_sign.as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(get("sig"), Some(expected.as_str()));
        // Without https-only, no `spr` (a loopback emulator over http).
        let plain = container_sas(
            &key(),
            &SasSpec {
                https_only: false,
                ..spec
            },
        )
        .unwrap();
        assert!(!plain.contains("spr="));
    }

    #[test]
    fn account_names_from_both_url_styles() {
        let name = |u: &str| account_name(&url::Url::parse(u).unwrap());
        assert_eq!(
            name("https://acc1.blob.core.windows.net/").as_deref(),
            Some("acc1")
        );
        assert_eq!(
            name("http://127.0.0.1:10000/devstoreaccount1/").as_deref(),
            Some("devstoreaccount1")
        );
        assert_eq!(name("http://127.0.0.1:10000/"), None);
    }
}
