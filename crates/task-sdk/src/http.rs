//! The HTTP client of every task (crate `task-http`, re-exported here so tasks name it
//! `task_sdk::http`) and its settings as the agent gives them.

pub use task_http::*;

use std::path::PathBuf;

use crate::agent::{Agent, LAUNCHER_TUNNEL_TOKEN_VARIABLE, LAUNCHER_TUNNEL_VARIABLE};

/// The client settings from the agent: `Agent.ProxyUrl`, `Agent.ProxyUsername`,
/// `Agent.ProxyPassword` (a secret), `Agent.ProxyBypassList`, `Agent.CAInfo` and the task
/// launcher's tunnel; a user agent naming `task` and `version`; the default timeouts.
/// Proxy credentials are registered as secrets before they could appear anywhere.
pub fn settings_from_agent(
    agent: &Agent,
    task: &str,
    version: &str,
) -> Result<HttpSettings, HttpSetupError> {
    let proxy = match agent
        .variable("Agent.ProxyUrl")
        .filter(|u| !u.trim().is_empty())
    {
        None => None,
        Some(url) => {
            let bypass = match agent.variable("Agent.ProxyBypassList") {
                Some(list) if !list.trim().is_empty() => serde_json::from_str::<Vec<String>>(&list)
                    .map_err(|e| HttpSetupError::BypassList {
                        detail: e.to_string(),
                    })?,
                _ => Vec::new(),
            };
            let password = agent
                .variable("Agent.ProxyPassword")
                .filter(|p| !p.is_empty());
            if let Some(p) = &password {
                crate::secrets::register(p);
            }
            let proxy = ProxySettings {
                url: url.trim().to_owned(),
                username: agent
                    .variable("Agent.ProxyUsername")
                    .filter(|u| !u.is_empty()),
                password,
                bypass,
            };
            // The client sends this header to the proxy: it is as secret as the password.
            if let Some(header) = proxy.basic_authorization() {
                crate::secrets::register(&header);
            }
            Some(proxy)
        }
    };
    Ok(HttpSettings {
        proxy,
        ca_file: agent
            .variable("Agent.CAInfo")
            .filter(|p| !p.trim().is_empty())
            .map(PathBuf::from),
        user_agent: user_agent(task, version),
        launcher_tunnel: launcher_tunnel(agent),
        ..HttpSettings::default()
    })
}

/// The launcher's tunnel, if both of its variables are set.
fn launcher_tunnel(agent: &Agent) -> Option<LauncherTunnel> {
    let address = agent
        .variable(LAUNCHER_TUNNEL_VARIABLE)
        .filter(|a| !a.trim().is_empty())?;
    let token = agent
        .variable(LAUNCHER_TUNNEL_TOKEN_VARIABLE)
        .filter(|t| !t.is_empty())?;
    // Requests go through the tunnel in the clear, bearer tokens included: only ever to
    // this machine.
    let loopback = address
        .trim()
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback());
    if !loopback {
        tracing::warn!(
            "ignoring {LAUNCHER_TUNNEL_VARIABLE}='{}': the launcher's tunnel is always on 127.0.0.1",
            address.trim()
        );
        return None;
    }
    Some(LauncherTunnel {
        address: address.trim().to_owned(),
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(vars: &[(&str, &str)]) -> Agent {
        Agent::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn settings_read_the_agent_variables() {
        let a = agent(&[
            ("AGENT_PROXYURL", "http://proxy.local:8888"),
            ("AGENT_PROXYUSERNAME", "bob"),
            ("SECRET_AGENT_PROXYPASSWORD", "proxy-pass-77"),
            (
                "AGENT_PROXYBYPASSLIST",
                r#"["\\.internal\\.example$", "localhost"]"#,
            ),
            ("AGENT_CAINFO", "/etc/ca.pem"),
        ]);
        let s = settings_from_agent(&a, "deploynotebooks", "0.1.0").unwrap();
        assert_eq!(
            s.proxy,
            Some(ProxySettings {
                url: "http://proxy.local:8888".into(),
                username: Some("bob".into()),
                password: Some("proxy-pass-77".into()),
                bypass: vec!["\\.internal\\.example$".into(), "localhost".into()],
            })
        );
        assert_eq!(s.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(s.user_agent, "azdo-data-tasks/0.1.0 (deploynotebooks)");
        assert_eq!(crate::secrets::mask("proxy-pass-77"), "***");
        // base64("bob:proxy-pass-77"): the header the proxy receives.
        assert_eq!(
            crate::secrets::mask("Basic Ym9iOnByb3h5LXBhc3MtNzc="),
            "***"
        );
    }

    #[test]
    fn a_bypass_list_that_is_not_json_is_named() {
        let a = agent(&[
            ("AGENT_PROXYURL", "http://p:1"),
            ("AGENT_PROXYBYPASSLIST", "not json"),
        ]);
        let e = settings_from_agent(&a, "t", "1").unwrap_err();
        assert!(matches!(e, HttpSetupError::BypassList { .. }), "{e}");
        assert!(e.to_string().contains("Agent.ProxyBypassList"), "{e}");
    }

    #[test]
    fn the_launcher_tunnel_and_its_token() {
        let a = agent(&[
            (LAUNCHER_TUNNEL_VARIABLE, "127.0.0.1:41000"),
            (LAUNCHER_TUNNEL_TOKEN_VARIABLE, "tunnel-token-5150"),
        ]);
        let s = settings_from_agent(&a, "t", "1").unwrap();
        assert_eq!(
            s.launcher_tunnel,
            Some(LauncherTunnel {
                address: "127.0.0.1:41000".into(),
                token: "tunnel-token-5150".into()
            })
        );
        assert_eq!(crate::secrets::mask("x tunnel-token-5150"), "x ***");
        // Without its token, no tunnel.
        let a = agent(&[(LAUNCHER_TUNNEL_VARIABLE, "127.0.0.1:41000")]);
        assert_eq!(
            settings_from_agent(&a, "t", "1").unwrap().launcher_tunnel,
            None
        );
    }

    #[test]
    fn a_tunnel_address_off_this_machine_is_ignored() {
        let a = agent(&[
            (LAUNCHER_TUNNEL_VARIABLE, "10.1.2.3:8080"),
            (LAUNCHER_TUNNEL_TOKEN_VARIABLE, "t"),
        ]);
        let s = settings_from_agent(&a, "t", "1").unwrap();
        assert_eq!(s.launcher_tunnel, None);
    }
}
