//! `azure-emulator [--port N] [--ca-out PATH] [--latency-ms L] [--steps N] [--retry-after S]
//! [--fault RULE]... [--arm-write-limit BURST/PER_SECOND] [--adf-strict]`: serves the emulator on 127.0.0.1 until killed. Prints the base URL as
//! the first line of stdout and, with `--ca-out`, the CA PEM's path as the second.

use std::{io::Write, path::PathBuf, process::ExitCode, time::Duration};

use azure_emulator::{Emulator, FaultRule, Options, WriteLimit};

const USAGE: &str = "usage: azure-emulator [--port N] [--ca-out PATH] [--latency-ms L] [--steps N]
       [--retry-after S] [--fault RULE]... [--arm-write-limit BURST/PER_SECOND] [--adf-strict]

RULE: 'METHOD /path STATUS|drop-before|drop-after [retry-after=S] [offset=N] [times=N]'
(* matches anything), e.g. --fault 'POST /subscriptions/*/createRun 503 times=2'.
GET/POST/DELETE /emulator/faults list, add (JSON) and clear rules at run time.
--arm-write-limit: ARM's throttling of the subscription's writes, e.g. 200/10 (its default:
a bucket of 200 refilled at 10 a second); beyond it, 429 with Retry-After.";

fn usage(message: &str) -> ExitCode {
    if message.is_empty() {
        eprintln!("{USAGE}");
    } else {
        eprintln!("azure-emulator: {message}\n{USAGE}");
    }
    ExitCode::from(2)
}

/// `BURST/PER_SECOND`, both above 0.
fn parse_write_limit(text: &str) -> Option<WriteLimit> {
    let (burst, rate) = text.split_once('/')?;
    let burst: u32 = burst.trim().parse().ok().filter(|b| *b > 0)?;
    let per_second: f64 = rate
        .trim()
        .parse()
        .ok()
        .filter(|r: &f64| r.is_finite() && *r > 0.0)?;
    Some(WriteLimit { burst, per_second })
}

fn main() -> ExitCode {
    let mut opts = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        if flag == "--adf-strict" {
            opts.adf_strict = true;
            continue;
        }
        let Some(value) = args.next() else {
            return usage(&format!("{flag} needs a value"));
        };
        let number = || value.parse::<u64>().ok();
        match flag.as_str() {
            "--port" => match value.parse() {
                Ok(p) => opts.port = p,
                Err(_) => return usage(&format!("--port: '{value}' is not a port")),
            },
            "--ca-out" => opts.ca_out = Some(PathBuf::from(&value)),
            "--latency-ms" => match number() {
                Some(ms) => opts.latency = Duration::from_millis(ms),
                None => return usage(&format!("--latency-ms: '{value}' is not a number")),
            },
            "--steps" => match value.parse() {
                Ok(n) => opts.operation_steps = n,
                Err(_) => return usage(&format!("--steps: '{value}' is not a number")),
            },
            "--retry-after" => match number() {
                Some(s) => opts.async_retry_after_secs = s,
                None => return usage(&format!("--retry-after: '{value}' is not a number")),
            },
            "--fault" => match value.parse::<FaultRule>() {
                Ok(rule) => opts.faults.push(rule),
                Err(e) => return usage(&format!("--fault: {e}")),
            },
            "--arm-write-limit" => match parse_write_limit(&value) {
                Some(limit) => opts.arm_write_limit = Some(limit),
                None => {
                    return usage(&format!(
                        "--arm-write-limit: '{value}' is not BURST/PER_SECOND (e.g. 200/10)"
                    ))
                }
            },
            other => return usage(&format!("unknown argument '{other}'")),
        }
    }
    let print_ca = opts.ca_out.is_some();
    let emulator = match Emulator::start_blocking(opts) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("azure-emulator: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", emulator.url());
    if print_ca {
        let _ = writeln!(out, "{}", emulator.ca_pem_path().display());
    }
    let _ = out.flush();
    drop(out);
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_limits_parse() {
        assert_eq!(parse_write_limit("200/10"), Some(WriteLimit::ARM));
        assert_eq!(
            parse_write_limit("5/0.5"),
            Some(WriteLimit {
                burst: 5,
                per_second: 0.5
            })
        );
        for bad in ["200", "0/10", "10/0", "x/1", "1/-2"] {
            assert_eq!(parse_write_limit(bad), None, "{bad}");
        }
    }
}
