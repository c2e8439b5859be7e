//! A minimal task on task-sdk: the size baseline in BENCHMARKS.md and the subject of the
//! result tests. Input `mode`: `succeed` (default), `fail`, `panic`, `http` (GET `url`).

use std::process::ExitCode;

use task_sdk::{out, run, TaskContext, TaskError, TaskInfo};

const INFO: TaskInfo = TaskInfo {
    name: "minimaltask",
    version: env!("CARGO_PKG_VERSION"),
    manifest: r#"{"inputs":[{"name":"mode","label":"Mode"},{"name":"url","label":"URL"}]}"#,
};

async fn body(ctx: TaskContext) -> Result<(), TaskError> {
    let mode = ctx.agent.input("mode").unwrap_or_else(|| "succeed".into());
    match mode.as_str() {
        "succeed" => {
            out::info("minimal task ran");
            out::set_variable("minimal.result", "done", false);
            Ok(())
        }
        "fail" => {
            let token = ctx.agent.variable("my.token").unwrap_or_default();
            Err(TaskError::new(format!(
                "the workspace refused token {token}: create a new token and update the variable"
            )))
        }
        "panic" => {
            let items: Vec<u8> = Vec::new();
            let index = items.len() + 3;
            out::info(&format!("item {}", items[index]));
            Ok(())
        }
        "http" => {
            let url = ctx.agent.required_input("url")?;
            let client = ctx.http_client()?;
            let response = client
                .send(
                    task_sdk::http::Request::get(&url),
                    task_sdk::Replay::ByMethod,
                )
                .await?;
            out::info(&format!("status {}", response.status().as_u16()));
            Ok(())
        }
        other => Err(TaskError::new(format!(
            "input 'Mode' (mode) must be succeed, fail, panic or http, got '{other}'"
        ))),
    }
}

fn main() -> ExitCode {
    run(INFO, body)
}
