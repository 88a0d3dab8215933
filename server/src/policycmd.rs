//! `nimbus-server policy ...`: the backup policy from the shell. Changes go
//! through [`Policies::update`], under the policy lock, so they are safe
//! while a server runs on the same data directory.

use crate::config::PolicyAction;
use crate::policies::{Editor, Policies, PolicyError};
use crate::updates::Scope;
use crate::vault::Vault;
use nimbus_common::policy::{Settings, FIELDS};
use std::path::Path;

pub fn run(data: &Path, vault: Vault, action: PolicyAction) -> Result<(), PolicyError> {
    let policies = Policies::open(data, vault)?;
    let print = |v: &serde_json::Value| {
        println!("{}", serde_json::to_string_pretty(v).expect("serialisable"))
    };
    match action {
        PolicyAction::Show { scope } => {
            let scope = parse_scope(&scope)?;
            let stored = policies.current()?;
            let settings = match scope {
                // The defaults are shown where they apply, to be edited.
                Scope::Fleet => stored.fleet_with_defaults(),
                _ => stored.layer(&scope),
            };
            print(&serde_json::json!({
                "settings": settings,
                "locked": stored.locked,
            }));
        }
        PolicyAction::Effective { machine } => {
            let scope = parse_scope(&format!("machine:{machine}"))?;
            let Scope::Machine(key) = scope else {
                unreachable!("parsed as a machine")
            };
            print(&serde_json::to_value(policies.current()?.effective(&key)).expect("json"));
        }
        PolicyAction::Set {
            scope,
            field,
            value,
        } => {
            let scope = parse_scope(&scope)?;
            check_field(&field)?;
            let value: serde_json::Value =
                serde_json::from_str(&value).unwrap_or(serde_json::Value::String(value));
            let one: Settings = serde_json::from_value(serde_json::json!({ &field: value }))
                .map_err(|e| PolicyError::Invalid(format!("{field}: {e}")))?;
            let mut settings = current_layer(&policies, &scope)?;
            settings.take_field(&one, &field);
            policies.set_layer(Editor::Admin, &scope, settings)?;
            println!("set {field}");
        }
        PolicyAction::Unset { scope, field } => {
            let scope = parse_scope(&scope)?;
            check_field(&field)?;
            let mut settings = policies.current()?.layer(&scope);
            settings.clear(&field);
            policies.set_layer(Editor::Admin, &scope, settings)?;
            println!("cleared {field}");
        }
        PolicyAction::Lock { fields } | PolicyAction::Unlock { fields } if fields.is_empty() => {
            return Err(PolicyError::Invalid("name at least one field".into()))
        }
        PolicyAction::Lock { fields } => {
            let mut locked = policies.current()?.locked.clone();
            locked.extend(fields);
            let now = policies.set_locked(locked)?;
            println!(
                "locked: {}",
                now.locked.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        PolicyAction::Unlock { fields } => {
            let mut locked = policies.current()?.locked.clone();
            for f in &fields {
                check_field(f)?;
                locked.remove(f);
            }
            let now = policies.set_locked(locked)?;
            println!(
                "locked: {}",
                now.locked.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    Ok(())
}

/// A layer as it is, with the fleet's defaults made explicit when it is
/// the fleet's (so setting one field keeps the default exclusions).
fn current_layer(policies: &Policies, scope: &Scope) -> Result<Settings, PolicyError> {
    let stored = policies.current()?;
    Ok(match scope {
        Scope::Fleet => stored.fleet_with_defaults(),
        _ => stored.layer(scope),
    })
}

fn parse_scope(text: &str) -> Result<Scope, PolicyError> {
    Scope::parse(text).ok_or_else(|| {
        PolicyError::Invalid(format!(
            "{text:?} is not a scope: write fleet, user:NAME or machine:USER/MACHINE"
        ))
    })
}

fn check_field(field: &str) -> Result<(), PolicyError> {
    if FIELDS.contains(&field) {
        Ok(())
    } else {
        Err(PolicyError::Invalid(format!(
            "{field:?} is not a setting; the settings are {}",
            FIELDS.join(", ")
        )))
    }
}
