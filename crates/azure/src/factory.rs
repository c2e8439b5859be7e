//! Data Factory objects (api-version 2018-06-01) for deploying a factory from its Git JSON:
//! the factory itself, its objects by type (list, put, delete) and trigger start/stop.
//!
//! Same client and `rest` layer as [`crate::adf`]: PUT, GET and DELETE are idempotent and
//! replayed by task-sdk's retry policy (429 with `Retry-After`, 5xx); trigger start/stop are
//! harmless to repeat.

use serde_json::{json, Value};
use task_sdk::http::Method;
use task_sdk::Replay;

use crate::adf::{AdfError, DataFactory, FactoryRef};

/// One object's place under a factory: its collection path segments and name, e.g.
/// `["pipelines"]` + `ingest`, or `["managedVirtualNetworks", "default",
/// "managedPrivateEndpoints"]` + `pe-sql`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectPath {
    pub collection: Vec<String>,
    pub name: String,
}

impl ObjectPath {
    fn segments(&self) -> Vec<&str> {
        let mut s: Vec<&str> = self.collection.iter().map(String::as_str).collect();
        s.push(&self.name);
        s
    }
}

impl DataFactory {
    /// `GET` the factory; `None` when it does not exist.
    pub async fn get_factory(&self, factory: &FactoryRef) -> Result<Option<Value>, AdfError> {
        self.get_json(factory, &[], &format!("reading {factory}"))
            .await
    }

    /// `PUT` the factory with `body` (`location`, `properties.globalParameters`, …).
    pub async fn put_factory(&self, factory: &FactoryRef, body: &Value) -> Result<Value, AdfError> {
        let action = format!("writing {factory}");
        let url = self.url(factory, &[], &[]);
        let answer = self
            .call(&action, Method::PUT, url, Some(body), Replay::ByMethod)
            .await?;
        Ok(answer.json().unwrap_or(Value::Null))
    }

    /// Every object of a collection (all pages), e.g. `["datasets"]`.
    pub async fn list_objects(
        &self,
        factory: &FactoryRef,
        collection: &[&str],
    ) -> Result<Vec<Value>, AdfError> {
        let action = format!("listing the {} of {factory}", collection.join("/"));
        let mut url = self.url(factory, collection, &[]);
        let mut all = Vec::new();
        for _ in 0..10_000 {
            let answer = self
                .call(&action, Method::GET, url, None, Replay::ByMethod)
                .await?;
            let json = answer.json().unwrap_or(Value::Null);
            all.extend(json["value"].as_array().cloned().unwrap_or_default());
            match json["nextLink"]
                .as_str()
                .and_then(|l| url::Url::parse(l).ok())
            {
                Some(next) => url = next,
                None => break,
            }
        }
        Ok(all)
    }

    /// `GET` one object; `None` when it does not exist.
    pub async fn get_object(
        &self,
        factory: &FactoryRef,
        path: &ObjectPath,
    ) -> Result<Option<Value>, AdfError> {
        let action = format!("reading {} '{}'", path.collection.join("/"), path.name);
        self.get_json(factory, &path.segments(), &action).await
    }

    /// `PUT` one object (`{"properties": …}`); Data Factory answers 200 for a create too.
    pub async fn put_object(
        &self,
        factory: &FactoryRef,
        path: &ObjectPath,
        properties: &Value,
    ) -> Result<Value, AdfError> {
        let action = format!("writing {} '{}'", path.collection.join("/"), path.name);
        let url = self.url(factory, &path.segments(), &[]);
        let body = json!({ "properties": properties });
        let answer = self
            .call(&action, Method::PUT, url, Some(&body), Replay::ByMethod)
            .await?;
        Ok(answer.json().unwrap_or(Value::Null))
    }

    /// `DELETE` one object (204 when it was already gone: not an error).
    pub async fn delete_object(
        &self,
        factory: &FactoryRef,
        path: &ObjectPath,
    ) -> Result<(), AdfError> {
        let action = format!("deleting {} '{}'", path.collection.join("/"), path.name);
        let url = self.url(factory, &path.segments(), &[]);
        self.call(&action, Method::DELETE, url, None, Replay::ByMethod)
            .await?;
        Ok(())
    }

    /// `POST …/triggers/{name}/start` or `/stop`.
    pub async fn set_trigger(
        &self,
        factory: &FactoryRef,
        trigger: &str,
        start: bool,
    ) -> Result<(), AdfError> {
        let verb = if start { "start" } else { "stop" };
        let action = format!(
            "{}ing trigger '{trigger}'",
            if start { "start" } else { "stopp" }
        );
        let url = self.url(factory, &["triggers", trigger, verb], &[]);
        self.call(&action, Method::POST, url, None, Replay::Safe)
            .await?;
        Ok(())
    }

    async fn get_json(
        &self,
        factory: &FactoryRef,
        tail: &[&str],
        action: &str,
    ) -> Result<Option<Value>, AdfError> {
        let url = self.url(factory, tail, &[]);
        match self
            .call(action, Method::GET, url, None, Replay::ByMethod)
            .await
        {
            Ok(answer) => Ok(answer.json()),
            Err(AdfError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
