//! The idempotency token of a one-time run: the same pipeline step, retried, never starts a
//! second run.

use ring::digest;
use task_sdk::Agent;

/// The most the Jobs API accepts.
pub const MAX_TOKEN_LEN: usize = 64;

/// A token from the pipeline's plan, job, attempt and task instance (`SYSTEM_PLANID`,
/// `SYSTEM_JOBID`, `SYSTEM_JOBATTEMPT`, `SYSTEM_TASKINSTANCEID`), hashed to 64 hex
/// characters, and `extra` (what the step submits, so that two different runs of one step,
/// e.g. in a loop of a script, are not confused). `None` outside a pipeline (no plan id):
/// every submit then starts a run.
///
/// A re-run of a failed job gets a new `SYSTEM_JOBATTEMPT`, hence a new run, as the user
/// expects; a request repeated inside one attempt gets the run it already started.
pub fn run_token(agent: &Agent, extra: &str) -> Option<String> {
    let plan = agent.variable("System.PlanId")?;
    let parts = [
        plan,
        agent.variable("System.JobId").unwrap_or_default(),
        agent.variable("System.JobAttempt").unwrap_or_default(),
        agent.variable("System.TaskInstanceId").unwrap_or_default(),
        extra.to_owned(),
    ];
    Some(token_of(&parts))
}

/// SHA-256 of the parts, each length-prefixed so that no two lists collide, as hex.
pub fn token_of(parts: &[String]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part.as_bytes());
    }
    let hex = crate::hex(ctx.finish().as_ref());
    hex[..MAX_TOKEN_LEN.min(hex.len())].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(vars: &[(&str, &str)]) -> Agent {
        Agent::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn same_step_same_token_other_attempt_other_token() {
        let base = [
            ("SYSTEM_PLANID", "plan-1"),
            ("SYSTEM_JOBID", "job-1"),
            ("SYSTEM_TASKINSTANCEID", "task-1"),
        ];
        let a = run_token(&agent(&base), "x").unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a, run_token(&agent(&base), "x").unwrap());
        assert_ne!(a, run_token(&agent(&base), "y").unwrap());
        let mut retried = base.to_vec();
        retried.push(("SYSTEM_JOBATTEMPT", "2"));
        assert_ne!(a, run_token(&agent(&retried), "x").unwrap());
        assert_eq!(run_token(&agent(&[]), "x"), None);
    }

    #[test]
    fn parts_do_not_run_together() {
        assert_ne!(
            token_of(&["ab".into(), "c".into()]),
            token_of(&["a".into(), "bc".into()])
        );
    }
}
