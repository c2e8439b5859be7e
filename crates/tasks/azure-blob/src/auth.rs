//! Where the blobs are and how requests are authorised: the AzureRM service connection (an
//! Entra ID token for Azure Storage, the account's URL from `storageAccount` and the cloud's
//! storage suffix), a connection string, or a SAS. An account key from a connection string is
//! turned into a short-lived account SAS here, so that the key itself never travels.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use task_sdk::TaskError;

use crate::transport::Auth;

/// The blob service of one account, authorised one way.
#[derive(Debug, Clone)]
pub struct Account {
    /// The blob service URL without query, with a trailing slash.
    pub service_url: url::Url,
    pub auth: Auth,
}

impl Account {
    /// The URL of `container` (no credential in it).
    pub fn container_url(&self, container: &str) -> url::Url {
        let mut url = self.service_url.clone();
        url.path_segments_mut()
            .expect("service URLs are base URLs")
            .pop_if_empty()
            .push(container);
        url
    }
}

/// The blob service suffix of an Azure cloud, by the connection's `environment`.
pub fn storage_suffix(environment: &str) -> Option<&'static str> {
    match environment.to_ascii_lowercase().as_str() {
        "azurecloud" | "" => Some("core.windows.net"),
        "azureusgovernment" => Some("core.usgovcloudapi.net"),
        "azurechinacloud" => Some("core.chinacloudapi.cn"),
        _ => None,
    }
}

/// Checks a service URL: https, or http to a loopback emulator; returns it with a trailing
/// slash and no query.
pub fn service_url(raw: &str, what: &str) -> Result<url::Url, TaskError> {
    // Errors show the URL without its query: a pasted SAS URL carries the signature there.
    let shown = raw.trim().split(['?', '#']).next().unwrap_or_default();
    let mut url = url::Url::parse(raw.trim())
        .map_err(|e| TaskError::new(format!("{what} '{shown}' is not a URL: {e}")))?;
    if !task_sdk::http::is_secure_or_loopback(&url) {
        return Err(TaskError::new(format!(
            "{what} '{shown}' must use https (plain http is accepted for a loopback emulator only)"
        )));
    }
    url.set_query(None);
    url.set_fragment(None);
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// A parsed storage connection string. `Debug` hides the key and SAS.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    pub account: Option<String>,
    pub key: Option<String>,
    pub sas: Option<String>,
    pub blob_endpoint: url::Url,
}

impl std::fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionString")
            .field("account", &self.account)
            .field("blob_endpoint", &self.blob_endpoint.as_str())
            .finish_non_exhaustive()
    }
}

/// Azurite's well-known development account (published in Microsoft's documentation).
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Parses `Key=Value;…` as Azure Storage writes it. Errors never quote the text (it holds a
/// key).
pub fn parse_connection_string(text: &str) -> Result<ConnectionString, TaskError> {
    let bad = |why: &str| {
        TaskError::new(format!(
            "input 'connectionString' is not a usable Azure Storage connection string: {why}"
        ))
    };
    let mut fields = std::collections::HashMap::new();
    for part in text.trim().split(';').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad("a part has no '=' (expected Key=Value;Key=Value)"))?;
        fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    if fields
        .get("usedevelopmentstorage")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Ok(ConnectionString {
            account: Some(DEV_ACCOUNT.into()),
            key: Some(DEV_KEY.into()),
            sas: None,
            blob_endpoint: service_url("http://127.0.0.1:10000/devstoreaccount1", "BlobEndpoint")?,
        });
    }
    let account = fields.get("accountname").cloned();
    let blob_endpoint = match (fields.get("blobendpoint"), &account) {
        (Some(endpoint), _) => service_url(endpoint, "the connection string's BlobEndpoint")?,
        (None, Some(account)) => {
            let protocol = fields
                .get("defaultendpointsprotocol")
                .map(String::as_str)
                .unwrap_or("https");
            let suffix = fields
                .get("endpointsuffix")
                .map(String::as_str)
                .unwrap_or("core.windows.net");
            service_url(
                &format!("{protocol}://{account}.blob.{suffix}"),
                "the connection string's account URL",
            )?
        }
        (None, None) => return Err(bad("it names neither AccountName nor BlobEndpoint")),
    };
    let key = fields.get("accountkey").cloned();
    let sas = fields
        .get("sharedaccesssignature")
        .map(|s| s.trim_start_matches('?').to_owned());
    if key.is_none() && sas.is_none() {
        return Err(bad("it has neither AccountKey nor SharedAccessSignature"));
    }
    if key.is_some() && account.is_none() {
        return Err(bad("AccountKey needs AccountName"));
    }
    Ok(ConnectionString {
        account,
        key,
        sas,
        blob_endpoint,
    })
}

/// The storage service version the SAS is signed for.
const SAS_VERSION: &str = "2021-08-06";

/// An account SAS for the blob service (read, write, delete, list, add, create on service,
/// containers and blobs), valid from five minutes ago for `lifetime`.
pub fn account_sas(
    account: &str,
    key_base64: &str,
    now: SystemTime,
    lifetime: Duration,
) -> Result<String, TaskError> {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_base64.trim())
        .map_err(|_| {
            TaskError::new(
                "the connection string's AccountKey is not base64: copy the connection string again from the storage account's Access keys",
            )
        })?;
    let start = iso8601(now - Duration::from_secs(300));
    let expiry = iso8601(now + lifetime);
    let (permissions, services, types) = ("rwdlac", "b", "sco");
    let to_sign = format!(
        "{account}\n{permissions}\n{services}\n{types}\n{start}\n{expiry}\n\n\n{SAS_VERSION}\n\n"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("sv", SAS_VERSION)
        .append_pair("ss", services)
        .append_pair("srt", types)
        .append_pair("sp", permissions)
        .append_pair("st", &start)
        .append_pair("se", &expiry)
        .append_pair("sig", &signature);
    Ok(query.finish())
}

/// `YYYY-MM-DDThh:mm:ssZ` in UTC.
pub fn iso8601(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// A SAS as users paste it: with or without the leading `?`, or a whole URL.
pub fn normalise_sas(text: &str) -> Result<String, TaskError> {
    let text = text.trim();
    let query = match text.split_once('?') {
        Some((_, q)) => q,
        None => text,
    };
    if !query.contains("sig=") {
        return Err(TaskError::new(
            "input 'sasToken' is not a SAS token: it has no 'sig=' parameter (expected sv=…&sig=…)",
        ));
    }
    Ok(query.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_iso8601() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096); // 2024-02-29T12:34:56Z
        assert_eq!(iso8601(t), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn connection_strings_parse_without_quoting_the_key() {
        let cs = parse_connection_string(
            "DefaultEndpointsProtocol=http;AccountName=acc;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1234/acc;",
        )
        .unwrap();
        assert_eq!(cs.account.as_deref(), Some("acc"));
        assert_eq!(cs.blob_endpoint.as_str(), "http://127.0.0.1:1234/acc/");
        assert!(!format!("{cs:?}").contains("a2V5"));
        let public = parse_connection_string("AccountName=acc;AccountKey=a2V5").unwrap();
        assert_eq!(
            public.blob_endpoint.as_str(),
            "https://acc.blob.core.windows.net/"
        );
        let err = parse_connection_string(
            "AccountName=acc;AccountKey=s3cr3t;BlobEndpoint=http://example.com",
        )
        .unwrap_err();
        assert!(!err.message().contains("s3cr3t"), "{}", err.message());
        // A SAS URL pasted as the endpoint: the error shows the URL without its query.
        let err = parse_connection_string(
            "BlobEndpoint=http://acc.blob.core.windows.net/?sv=1&sig=S1GNATURE;SharedAccessSignature=sv=1&sig=S1GNATURE",
        )
        .unwrap_err();
        assert!(!err.message().contains("S1GNATURE"), "{}", err.message());
        assert!(
            err.message()
                .contains("'http://acc.blob.core.windows.net/'"),
            "{}",
            err.message()
        );
        let err = service_url("https://[acc/?sig=S1GNATURE", "input 'blobEndpoint'").unwrap_err();
        assert!(!err.message().contains("S1GNATURE"), "{}", err.message());
        assert!(parse_connection_string("nonsense").is_err());
        assert!(parse_connection_string("AccountName=acc").is_err());
    }

    #[test]
    fn sas_tokens_are_normalised() {
        assert_eq!(normalise_sas("?sv=1&sig=x").unwrap(), "sv=1&sig=x");
        assert_eq!(
            normalise_sas("https://a/b?sv=1&sig=x").unwrap(),
            "sv=1&sig=x"
        );
        assert!(normalise_sas("sv=1").is_err());
    }
}
