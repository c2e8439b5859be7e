//! The task's inputs, typed: names and pick-list values of `AzureResourceManagerTemplateDeployment@3`,
//! with the V2/V3 aliases, read from a `task_sdk::Agent`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use task_sdk::{Agent, PickMatch, TaskError};

/// Where the template is deployed (`deploymentScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    ResourceGroup,
    Subscription,
    ManagementGroup,
}

/// `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    CreateOrUpdate,
    DeleteResourceGroup,
}

/// `deploymentMode`, with our extra `WhatIf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Incremental,
    Complete,
    Validation,
    WhatIf,
}

/// Where the template and parameters come from (`templateLocation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateInput {
    /// Patterns, relative to `System.DefaultWorkingDirectory` unless absolute.
    Files {
        template: String,
        parameters: Option<String>,
    },
    Links {
        template: String,
        parameters: Option<String>,
    },
}

/// Everything the task was asked to do.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub connection: String,
    pub scope: ScopeKind,
    /// The `subscriptionName`/`subscriptionId` input; empty → the connection's.
    pub subscription: Option<String>,
    pub action: Action,
    pub resource_group: Option<String>,
    pub location: Option<String>,
    pub template: TemplateInput,
    pub overrides: String,
    pub mode: Mode,
    /// The mode a what-if previews (`whatIfDeploymentMode`): `Complete` shows deletions.
    pub what_if_complete: bool,
    pub deployment_name: Option<String>,
    pub outputs_prefix: Option<String>,
    pub add_spn_to_environment: bool,
    pub use_without_json: bool,
    pub timeout: Option<Duration>,
    /// `System.DefaultWorkingDirectory`.
    pub root: PathBuf,
    /// Staging of linked templates (`artifactsStorageAccount`); `None`: no staging.
    pub artifacts: Option<Artifacts>,
}

/// Where the template's folder is staged for linked templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifacts {
    /// `artifactsStorageAccount`: an account name, or a blob service URL.
    pub account: String,
    /// `artifactsContainer`, or the default of Visual Studio's Deploy-AzureResourceGroup.ps1.
    pub container: String,
    /// `artifactsPrefix` without leading or trailing `/`; `None`: a folder per run.
    pub prefix: Option<String>,
}

/// Whether `name` is a valid blob container name: 3-63 lowercase letters, digits and single
/// hyphens, starting and ending with a letter or digit.
pub fn valid_container_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// The container Visual Studio's Deploy-AzureResourceGroup.ps1 stages to:
/// `<resource group, lower case>-stageartifacts`, with the characters a container name cannot
/// hold (a resource group's `.`, `_`, `(`, `)`) turned into `-`.
pub fn default_container(resource_group: Option<&str>) -> String {
    const SUFFIX: &str = "stageartifacts";
    let Some(rg) = resource_group else {
        return SUFFIX.to_owned();
    };
    let mut name = String::new();
    for c in rg.to_lowercase().chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (name.is_empty() || name.ends_with('-'))) {
            name.push(c);
        }
    }
    name.truncate(63 - SUFFIX.len() - 1);
    let name = name.trim_end_matches('-');
    if name.is_empty() {
        SUFFIX.to_owned()
    } else {
        format!("{name}-{SUFFIX}")
    }
}

fn artifacts(agent: &Agent, resource_group: Option<&str>) -> Result<Option<Artifacts>, TaskError> {
    let Some(account) = agent.input("artifactsStorageAccount") else {
        return Ok(None);
    };
    let container = match agent.input("artifactsContainer") {
        Some(c) => {
            let c = c.trim().to_owned();
            if !valid_container_name(&c) {
                return Err(TaskError::new(format!(
                    "input 'artifactsContainer' is '{c}', which is not a blob container name: 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit"
                )));
            }
            c
        }
        None => default_container(resource_group),
    };
    let prefix = match agent.input("artifactsPrefix") {
        Some(p) => {
            let p = p.trim().trim_matches('/').to_owned();
            if p.is_empty()
                || p.contains(['\\', '?', '#'])
                || p.split('/').any(|s| s.is_empty() || s == "." || s == "..")
            {
                return Err(TaskError::new(format!(
                    "input 'artifactsPrefix' is '{p}', which is not a blob folder: use names separated by '/', without '\\', '?', '#', '.' or '..' segments"
                )));
            }
            Some(p)
        }
        None => None,
    };
    Ok(Some(Artifacts {
        account: account.trim().to_owned(),
        container,
        prefix,
    }))
}

/// The agent turns an empty `filePath` input into `System.DefaultWorkingDirectory` itself;
/// that value means "not given" (task-lib's `filePathSupplied`).
fn file_input(agent: &Agent, name: &str, root: &Path) -> Option<String> {
    let value = agent.input(name)?;
    let trimmed = value.trim_end_matches(['/', '\\']);
    if Path::new(trimmed) == root || trimmed.is_empty() {
        return None;
    }
    Some(value)
}

impl Inputs {
    pub fn from_agent(agent: &Agent) -> Result<Inputs, TaskError> {
        let connection = agent.input_any(&["ConnectedServiceName", "azureResourceManagerConnection", "azureSubscription"])
            .ok_or_else(|| TaskError::new("input 'Azure Resource Manager connection' (ConnectedServiceName, alias azureSubscription or azureResourceManagerConnection) is required but empty: name an AzureRM service connection"))?;
        let scope = agent.pick_input(
            "deploymentScope",
            ScopeKind::ResourceGroup,
            &[
                ("Resource Group", ScopeKind::ResourceGroup),
                ("Subscription", ScopeKind::Subscription),
                ("Management Group", ScopeKind::ManagementGroup),
            ],
            PickMatch::IgnoreCaseAndSeparators,
        )?;
        let action = agent.pick_input(
            "action",
            Action::CreateOrUpdate,
            &[
                ("Create Or Update Resource Group", Action::CreateOrUpdate),
                ("DeleteRG", Action::DeleteResourceGroup),
            ],
            PickMatch::IgnoreCaseAndSeparators,
        )?;
        let mode = agent.pick_input(
            "deploymentMode",
            Mode::Incremental,
            &[
                ("Incremental", Mode::Incremental),
                ("Complete", Mode::Complete),
                ("Validation", Mode::Validation),
                ("WhatIf", Mode::WhatIf),
                ("What-if", Mode::WhatIf),
            ],
            PickMatch::IgnoreCaseAndSeparators,
        )?;
        #[derive(Clone, Copy, PartialEq)]
        enum Location {
            Artifact,
            Url,
        }
        let location_kind = agent.pick_input(
            "templateLocation",
            Location::Artifact,
            &[
                ("Linked artifact", Location::Artifact),
                ("URL of the file", Location::Url),
            ],
            PickMatch::IgnoreCaseAndSeparators,
        )?;
        let root = agent
            .variable("System.DefaultWorkingDirectory")
            .map(PathBuf::from)
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("."));
        let deploying = scope != ScopeKind::ResourceGroup || action == Action::CreateOrUpdate;
        let template = match location_kind {
            Location::Artifact => TemplateInput::Files {
                template: match file_input(agent, "csmFile", &root) {
                    Some(t) => t,
                    None if deploying => {
                        return Err(TaskError::new("input 'Template' (csmFile) is required but empty: give the path or a pattern of the ARM template"))
                    }
                    None => String::new(),
                },
                parameters: file_input(agent, "csmParametersFile", &root),
            },
            Location::Url => TemplateInput::Links {
                template: match agent.input("csmFileLink") {
                    Some(t) => t,
                    None if deploying => {
                        return Err(TaskError::new("input 'Template link' (csmFileLink) is required but empty when the template location is 'URL of the file'"))
                    }
                    None => String::new(),
                },
                parameters: agent.input("csmParametersFileLink"),
            },
        };
        let resource_group = agent.input("resourceGroupName");
        if scope == ScopeKind::ResourceGroup && resource_group.is_none() {
            return Err(TaskError::new(
                "input 'Resource group' (resourceGroupName) is required at resource group scope",
            ));
        }
        let location = agent.input("location");
        if scope != ScopeKind::ResourceGroup && location.is_none() {
            return Err(TaskError::new(format!(
                "input 'Location' (location) is required at {} scope: it is where Azure stores the deployment's metadata",
                match scope {
                    ScopeKind::Subscription => "subscription",
                    _ => "management group",
                }
            )));
        }
        if mode == Mode::Complete && scope != ScopeKind::ResourceGroup {
            return Err(TaskError::new(
                "deployment mode 'Complete' is only supported at resource group scope; use 'Incremental'",
            ));
        }
        #[derive(Clone, Copy, PartialEq)]
        enum Previewed {
            Incremental,
            Complete,
        }
        let previewed = agent.pick_input(
            "whatIfDeploymentMode",
            Previewed::Incremental,
            &[
                ("Incremental", Previewed::Incremental),
                ("Complete", Previewed::Complete),
            ],
            PickMatch::IgnoreCaseAndSeparators,
        )?;
        if mode == Mode::WhatIf
            && previewed == Previewed::Complete
            && scope != ScopeKind::ResourceGroup
        {
            return Err(TaskError::new(
                "what-if of deployment mode 'Complete' is only supported at resource group scope; use 'Incremental'",
            ));
        }
        let minutes = agent
            .int_input_in("timeoutInMinutes", 0..=43_200)?
            .unwrap_or(0);
        Ok(Inputs {
            connection,
            scope,
            subscription: agent.input_any(&["subscriptionName", "subscriptionId"]),
            action,
            location,
            template,
            overrides: agent.input("overrideParameters").unwrap_or_default(),
            mode,
            what_if_complete: mode == Mode::WhatIf && previewed == Previewed::Complete,
            deployment_name: agent.input("deploymentName"),
            outputs_prefix: agent.input("deploymentOutputs"),
            add_spn_to_environment: agent.bool_input("addSpnToEnvironment", false),
            use_without_json: agent.bool_input("useWithoutJSON", false),
            timeout: (minutes > 0).then(|| Duration::from_secs(minutes as u64 * 60)),
            artifacts: artifacts(
                agent,
                (scope == ScopeKind::ResourceGroup)
                    .then_some(resource_group.as_deref())
                    .flatten(),
            )?,
            resource_group,
            root,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(vars: &[(&str, &str)]) -> Agent {
        Agent::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn v2_inputs_of_the_seed() {
        let a = agent(&[
            ("SYSTEM_DEFAULTWORKINGDIRECTORY", "/w"),
            ("INPUT_CONNECTEDSERVICENAME", "conn"),
            ("INPUT_RESOURCEGROUPNAME", "rg"),
            ("INPUT_LOCATION", "westeurope"),
            ("INPUT_CSMFILE", "/w/adf/ARMTemplateForFactory.json"),
            (
                "INPUT_CSMPARAMETERSFILE",
                "/w/adf/ARMTemplateParametersForFactory.json",
            ),
            ("INPUT_OVERRIDEPARAMETERS", "-x \"y\""),
        ]);
        let i = Inputs::from_agent(&a).unwrap();
        assert_eq!(i.connection, "conn");
        assert_eq!(i.scope, ScopeKind::ResourceGroup);
        assert_eq!(i.action, Action::CreateOrUpdate);
        assert_eq!(i.mode, Mode::Incremental);
        assert_eq!(
            i.template,
            TemplateInput::Files {
                template: "/w/adf/ARMTemplateForFactory.json".into(),
                parameters: Some("/w/adf/ARMTemplateParametersForFactory.json".into())
            }
        );
        assert_eq!(i.timeout, None);
        assert_eq!(i.artifacts, None);
    }

    #[test]
    fn artifacts_default_to_visual_studios_container() {
        let a = agent(&[
            ("INPUT_CONNECTEDSERVICENAME", "conn"),
            ("INPUT_RESOURCEGROUPNAME", "My_RG.(dev)"),
            ("INPUT_CSMFILE", "t.json"),
            ("INPUT_ARTIFACTSSTORAGEACCOUNT", " stagingacc "),
            ("INPUT_ARTIFACTSPREFIX", "/builds/42/"),
        ]);
        let i = Inputs::from_agent(&a).unwrap();
        assert_eq!(
            i.artifacts,
            Some(Artifacts {
                account: "stagingacc".into(),
                container: "my-rg-dev-stageartifacts".into(),
                prefix: Some("builds/42".into()),
            })
        );
        assert_eq!(default_container(Some("rg1")), "rg1-stageartifacts");
        assert_eq!(default_container(None), "stageartifacts");
        assert_eq!(default_container(Some("___")), "stageartifacts");
        let long = default_container(Some(&"a".repeat(90)));
        assert!(valid_container_name(&long), "{long}");
        assert!(valid_container_name("rg1-stageartifacts"));
        assert!(
            !valid_container_name("a--b")
                && !valid_container_name("-ab")
                && !valid_container_name("ab")
        );
    }

    #[test]
    fn aliases_and_defaults() {
        let a = agent(&[
            ("SYSTEM_DEFAULTWORKINGDIRECTORY", "/w"),
            ("INPUT_AZURESUBSCRIPTION", "conn2"),
            ("INPUT_DEPLOYMENTSCOPE", "Subscription"),
            ("INPUT_LOCATION", "westeurope"),
            ("INPUT_CSMFILE", "t.json"),
            // The agent's rendering of an empty filePath input.
            ("INPUT_CSMPARAMETERSFILE", "/w"),
            ("INPUT_SUBSCRIPTIONID", "sub-1"),
            ("INPUT_DEPLOYMENTMODE", "whatif"),
            ("INPUT_TIMEOUTINMINUTES", "5"),
        ]);
        let i = Inputs::from_agent(&a).unwrap();
        assert_eq!(i.connection, "conn2");
        assert_eq!(i.scope, ScopeKind::Subscription);
        assert_eq!(i.subscription.as_deref(), Some("sub-1"));
        assert_eq!(i.mode, Mode::WhatIf);
        assert_eq!(
            i.template,
            TemplateInput::Files {
                template: "t.json".into(),
                parameters: None
            }
        );
        assert_eq!(i.timeout, Some(Duration::from_secs(300)));
    }

    #[test]
    fn errors_name_the_input() {
        let base = [
            ("INPUT_CONNECTEDSERVICENAME", "c"),
            ("INPUT_CSMFILE", "t.json"),
        ];
        let with = |extra: &[(&str, &str)]| {
            let mut v: Vec<(&str, &str)> = base.to_vec();
            v.extend_from_slice(extra);
            Inputs::from_agent(&agent(&v))
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        assert!(with(&[]).contains("resourceGroupName"));
        let e = with(&[
            ("INPUT_RESOURCEGROUPNAME", "rg"),
            ("INPUT_ARTIFACTSSTORAGEACCOUNT", "acc"),
            ("INPUT_ARTIFACTSCONTAINER", "Bad_Name"),
        ]);
        assert!(
            e.contains("artifactsContainer") && e.contains("'Bad_Name'"),
            "{e}"
        );
        let e = with(&[
            ("INPUT_RESOURCEGROUPNAME", "rg"),
            ("INPUT_ARTIFACTSSTORAGEACCOUNT", "acc"),
            ("INPUT_ARTIFACTSPREFIX", "a/../b"),
        ]);
        assert!(e.contains("artifactsPrefix"), "{e}");
        assert!(with(&[("INPUT_DEPLOYMENTSCOPE", "Subscription")]).contains("'Location'"));
        assert!(with(&[
            ("INPUT_DEPLOYMENTSCOPE", "Subscription"),
            ("INPUT_LOCATION", "x"),
            ("INPUT_DEPLOYMENTMODE", "Complete")
        ])
        .contains("only supported at resource group scope"));
        let e = with(&[
            ("INPUT_RESOURCEGROUPNAME", "rg"),
            ("INPUT_DEPLOYMENTMODE", "Fast"),
        ]);
        assert!(e.contains("'Fast'") && e.contains("'Incremental'"), "{e}");
        let e = Inputs::from_agent(&agent(&[("INPUT_RESOURCEGROUPNAME", "rg")]))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.contains("ConnectedServiceName"), "{e}");
        // Deleting a resource group needs no template.
        let a = agent(&[
            ("INPUT_CONNECTEDSERVICENAME", "c"),
            ("INPUT_RESOURCEGROUPNAME", "rg"),
            ("INPUT_ACTION", "DeleteRG"),
        ]);
        assert_eq!(
            Inputs::from_agent(&a).unwrap().action,
            Action::DeleteResourceGroup
        );
    }
}
