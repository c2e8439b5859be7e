//! Fault rules: statuses with ARM's error body, dropped connections before and after the
//! request took effect, offset and times, set by options and at run time.

use azure_emulator::FaultRule;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{fast, Arm, API};

fn rule(text: &str) -> FaultRule {
    text.parse().expect("the rule parses")
}

/// `PUT` of resource group `name`.
async fn put_rg(arm: &Arm, name: &str) -> crate::common::Answer {
    arm.call(
        Method::PUT,
        &format!("{}/resourcegroups/{name}?{API}", arm.sub()),
        Some(json!({"location": "westeurope"})),
    )
    .await
}

async fn rg_exists(arm: &Arm, name: &str) -> bool {
    let state = arm.emu.state();
    state["resourceGroups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|rg| rg["name"] == name)
}

#[tokio::test]
async fn a_status_rule_answers_with_arm_errors_after_its_offset_and_for_its_times() {
    let arm = Arm::start(azure_emulator::Options {
        faults: vec![rule(
            "PUT /subscriptions/*/resourcegroups/* 429 retry-after=7 offset=1 times=2",
        )],
        ..fast()
    })
    .await;
    let put = |name: &'static str| put_rg(&arm, name);
    assert_eq!(put("first").await.status, StatusCode::CREATED);
    for name in ["second", "third"] {
        let a = put(name).await;
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
        assert_eq!(a.header("retry-after"), "7");
        assert_eq!(a.body["error"]["code"], "SubscriptionRequestsThrottled");
        assert!(
            !rg_exists(&arm, name).await,
            "a throttled request must not take effect"
        );
    }
    assert_eq!(put("fourth").await.status, StatusCode::CREATED);
    // Used up: the rule is gone.
    let listed = arm.call(Method::GET, "/emulator/faults", None).await;
    assert_eq!(listed.body, json!({"rules": []}));
}

#[tokio::test]
async fn dropped_connections_before_and_after_the_request_took_effect() {
    let arm = Arm::start(fast()).await;
    let add = arm
        .call(
            Method::POST,
            "/emulator/faults",
            Some(json!([
                {"pattern": "PUT /subscriptions/*/resourcegroups/before", "drop": "before", "times": 1},
                {"pattern": "PUT /subscriptions/*/resourcegroups/after", "drop": "after", "times": 1},
            ])),
        )
        .await;
    assert_eq!(add.status, StatusCode::OK, "{}", add.body);
    assert_eq!(add.body["rules"].as_array().unwrap().len(), 2);
    for (name, took_effect) in [("before", false), ("after", true)] {
        let url = format!("{}{}/resourcegroups/{name}?{API}", arm.emu.url(), arm.sub());
        let sent = arm
            .client
            .put(&url)
            .bearer_auth(&arm.token)
            .json(&json!({"location": "westeurope"}))
            .send()
            .await;
        assert!(
            sent.is_err(),
            "{name}: the connection must close unanswered: {sent:?}"
        );
        assert_eq!(rg_exists(&arm, name).await, took_effect, "{name}");
    }
    // The rules fired once each; the same calls now go through.
    let again = arm
        .call(
            Method::PUT,
            &format!("{}/resourcegroups/before?{API}", arm.sub()),
            Some(json!({"location": "westeurope"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
}

#[tokio::test]
async fn rules_are_listed_cleared_and_bad_ones_refused() {
    let arm = Arm::start(fast()).await;
    let bad = arm
        .call(
            Method::POST,
            "/emulator/faults",
            Some(json!({"pattern": "GET /x", "status": 503, "drop": "after"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["error"]["code"], "InvalidFaultRule");
    let ok = arm
        .call(
            Method::POST,
            "/emulator/faults",
            Some(json!({"pattern": "* /subscriptions/*", "status": 503})),
        )
        .await;
    assert_eq!(
        ok.body["rules"],
        json!([{"pattern": "* /subscriptions/*", "status": 503, "retryAfter": 1, "offset": 0, "times": Value::Null}])
    );
    let a = arm
        .call(Method::GET, &format!("{}?{API}", arm.sub()), None)
        .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.body["error"]["code"], "ServiceUnavailable");
    assert_eq!(a.header("retry-after"), "1");
    // The emulator's own endpoints are never faulted.
    let cleared = arm.call(Method::DELETE, "/emulator/faults", None).await;
    assert_eq!(cleared.body, json!({"rules": []}));
    let a = arm
        .call(Method::GET, &format!("{}?{API}", arm.sub()), None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn the_write_limit_throttles_writes_only_and_refills() {
    // A bucket of 2 refilled at one write every 2 s.
    let arm = Arm::start(azure_emulator::Options {
        arm_write_limit: Some(azure_emulator::WriteLimit {
            burst: 2,
            per_second: 0.5,
        }),
        ..fast()
    })
    .await;
    let put = |name: &'static str| put_rg(&arm, name);
    assert_eq!(put("one").await.status, StatusCode::CREATED);
    assert_eq!(put("two").await.status, StatusCode::CREATED);
    let a = put("three").await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert_eq!(a.header("retry-after"), "2");
    assert_eq!(a.body["error"]["code"], "SubscriptionRequestsThrottled");
    assert!(!rg_exists(&arm, "three").await);
    // Reads are not writes.
    let read = arm
        .call(
            Method::GET,
            &format!("{}/resourcegroups/one?{API}", arm.sub()),
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(arm.emu.state()["writesThrottled"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(put("three").await.status, StatusCode::CREATED);
}
