//! `databricks-emulator`: serves the emulator on 127.0.0.1 until killed.
//! The first line of stdout is the base URL.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use databricks_emulator::{Emulator, Options};

const USAGE: &str = "usage: databricks-emulator [--port N] [--token T]... [--latency-ms L]
       [--rate-limit ENDPOINT=PER_SECOND]... [--fail-503 FRACTION] [--drop FRACTION]
       [--drop-mode before|after] [--seed S] [--fault RULE]... [--python PATH | --no-python]
       [--cluster ID]... [--terminated-cluster ID]... [--failing-cluster ID]...
       [--cluster-name ID=NAME]... [--cluster-start-ms MS] [--run-delay-ms MS]
       [--run-fault fail|timeout|internal-error] [--user NAME]
       [--volume CATALOG.SCHEMA.VOLUME]... [--failing-library NAME]...
       [--library-delay-ms MS] [--blob-endpoint ACCOUNT=URL]...

Serves a local Databricks workspace on 127.0.0.1 and prints its base URL as the
first line of stdout. ENDPOINT is a key such as import, export, runs/submit, runs/get.
RULE: 'METHOD /path STATUS|drop-before|drop-after [retry-after=S] [offset=N] [times=N]'
(* matches anything), e.g. --fault 'POST /api/2.1/jobs/runs/submit drop-after times=1';
rules are checked before the random faults.
--blob-endpoint tells notebooks' dbutils.fs where the blob service of a storage account is
(wasbs://<container>@ACCOUNT.blob.core.windows.net/...), e.g.
devstoreaccount1=http://127.0.0.1:10000/devstoreaccount1 for Azurite.
GET /emulator/state dumps the workspace, runs and request counts; GET/POST/DELETE
/emulator/faults list, add (JSON) and clear fault rules.
POST /emulator/volumes {\"name\": \"c.s.v\"} creates a volume; POST /emulator/git-remotes
{\"url\", \"branches\": {name: commit}, \"tags\": {...}} declares a Git remote.";

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut opts = Options::default();
    let mut clusters_given = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let number = |v: String| -> Result<f64, String> {
            v.parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| format!("{flag}: '{v}' is not a non-negative number"))
        };
        let fraction = |v: String| -> Result<f64, String> {
            number(v).and_then(|n| {
                if n <= 1.0 {
                    Ok(n)
                } else {
                    Err(format!("{flag}: a fraction must be between 0 and 1"))
                }
            })
        };
        match flag.as_str() {
            "--port" => {
                let v = value()?;
                opts.port = v
                    .parse()
                    .map_err(|_| format!("--port: '{v}' is not a port"))?;
            }
            "--token" => opts.tokens.push(value()?),
            "--latency-ms" => opts.latency = Duration::from_millis(number(value()?)? as u64),
            "--rate-limit" => {
                let v = value()?;
                let (key, rate) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--rate-limit: '{v}' is not ENDPOINT=PER_SECOND"))?;
                let rate: u32 =
                    rate.parse().ok().filter(|r| *r > 0).ok_or_else(|| {
                        format!("--rate-limit: '{rate}' is not a positive integer")
                    })?;
                opts.rate_limits.insert(key.to_string(), rate);
            }
            "--fail-503" => opts.fail_503_fraction = fraction(value()?)?,
            "--drop" => opts.drop_fraction = fraction(value()?)?,
            "--drop-mode" => opts.drop_mode = value()?.parse()?,
            "--seed" => {
                let v = value()?;
                opts.seed = v
                    .parse()
                    .map_err(|_| format!("--seed: '{v}' is not an integer"))?;
            }
            "--fault" => opts.fault_rules.push(
                value()?
                    .parse()
                    .map_err(|e: String| format!("--fault: {e}"))?,
            ),
            "--python" => opts.python = Some(PathBuf::from(value()?)),
            "--no-python" => opts.python = Some(PathBuf::new()),
            "--cluster" => {
                if !clusters_given {
                    opts.clusters.clear();
                    clusters_given = true;
                }
                opts.clusters.push(value()?);
            }
            "--terminated-cluster" => opts.terminated_clusters.push(value()?),
            // A terminated cluster whose start fails (termination reason: quota).
            "--failing-cluster" => {
                let id = value()?;
                opts.terminated_clusters.push(id.clone());
                opts.failing_clusters.push(id);
            }
            "--cluster-name" => {
                let v = value()?;
                let (id, name) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--cluster-name: '{v}' is not ID=NAME"))?;
                opts.cluster_names.insert(id.to_string(), name.to_string());
            }
            "--cluster-start-ms" => {
                opts.cluster_start_delay = Duration::from_millis(number(value()?)? as u64)
            }
            "--run-delay-ms" => {
                opts.non_python_run_delay = Duration::from_millis(number(value()?)? as u64)
            }
            "--run-fault" => opts.run_fault = Some(value()?.parse()?),
            "--user" => opts.user_name = value()?,
            "--volume" => opts.volumes.push(value()?),
            "--failing-library" => opts.failing_libraries.push(value()?),
            "--library-delay-ms" => {
                opts.library_install_delay = Duration::from_millis(number(value()?)? as u64)
            }
            "--blob-endpoint" => {
                let v = value()?;
                let (account, url) = v
                    .split_once('=')
                    .filter(|(a, u)| !a.is_empty() && u.starts_with("http"))
                    .ok_or_else(|| {
                        format!("--blob-endpoint: '{v}' is not ACCOUNT=URL (an http(s) URL)")
                    })?;
                opts.blob_endpoints
                    .insert(account.to_string(), url.to_string());
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(opts) => opts,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("databricks-emulator: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("databricks-emulator: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let emulator = match Emulator::start(opts).await {
            Ok(emulator) => emulator,
            Err(e) => {
                eprintln!("databricks-emulator: cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "{}", emulator.url());
        let _ = stdout.flush();
        wait_for_signal().await;
        drop(emulator);
        ExitCode::SUCCESS
    })
}

/// Ctrl-C or SIGTERM: stop cleanly so the temp folder is removed.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_flags() {
        let o = parse_args(&args(
            "--port 8080 --token a --token b --latency-ms 100 --rate-limit import=30 --fail-503 0.1 --drop 0.05 --drop-mode after --seed 9 --no-python --cluster c1 --cluster c2 --run-fault timeout",
        ))
        .unwrap();
        assert_eq!(o.port, 8080);
        assert_eq!(o.tokens, vec!["a", "b"]);
        assert_eq!(o.latency, Duration::from_millis(100));
        assert_eq!(o.rate_limits.get("import"), Some(&30));
        assert_eq!(o.drop_mode, databricks_emulator::DropMode::After);
        assert_eq!(o.python, Some(PathBuf::new()));
        assert_eq!(o.clusters, vec!["c1", "c2"]);
        assert_eq!(o.run_fault, Some(databricks_emulator::RunFault::Timeout));
    }

    #[test]
    fn parses_fault_rules() {
        let o =
            parse_args(&["--fault".to_string(), "POST /api/* 503 times=2".to_string()]).unwrap();
        assert_eq!(
            o.fault_rules,
            vec!["POST /api/* 503 times=2".parse().unwrap()]
        );
        let bad = parse_args(&["--fault".to_string(), "POST /api/* 200".to_string()]);
        assert!(bad.unwrap_err().starts_with("--fault: "));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse_args(&args("--port"))
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse_args(&args("--drop 2")).is_err());
        assert!(parse_args(&args("--rate-limit import")).is_err());
        assert!(parse_args(&args("--bogus"))
            .unwrap_err()
            .contains("unknown"));
    }
}
