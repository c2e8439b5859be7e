//! `azure-emulator [--port N] [--ca-out PATH] [--latency-ms L] [--steps N] [--retry-after S]
//! [--fault RULE]... [--adf-strict]`: serves the emulator on 127.0.0.1 until killed. Prints the base URL as
//! the first line of stdout and, with `--ca-out`, the CA PEM's path as the second.

use std::{io::Write, path::PathBuf, process::ExitCode, time::Duration};

use azure_emulator::{Emulator, FaultRule, Options};

const USAGE: &str = "usage: azure-emulator [--port N] [--ca-out PATH] [--latency-ms L] [--steps N]
       [--retry-after S] [--fault RULE]... [--adf-strict]

RULE: 'METHOD /path STATUS|drop-before|drop-after [retry-after=S] [offset=N] [times=N]'
(* matches anything), e.g. --fault 'POST /subscriptions/*/createRun 503 times=2'.
GET/POST/DELETE /emulator/faults list, add (JSON) and clear rules at run time.";

fn usage(message: &str) -> ExitCode {
    if message.is_empty() {
        eprintln!("{USAGE}");
    } else {
        eprintln!("azure-emulator: {message}\n{USAGE}");
    }
    ExitCode::from(2)
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
