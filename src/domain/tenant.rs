//! Tenants (stored in `users`): their status and the limits the platform enforces per tenant.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::validation::{ValidationError, check_name, check_range};

/// Whether a tenant may use the platform. A suspended tenant's API keys are refused and its
/// inbound calls are rejected (end reason `tenant_suspended`), but its data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TenantStatus {
    Active,
    Suspended,
}

/// Per-tenant limits, set by an operator through the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub(crate) struct Limits {
    /// Calls (inbound and outbound) that may be live at once; the next one is refused with end
    /// reason `concurrency_limit`.
    #[schema(minimum = 1, maximum = 10_000)]
    pub max_concurrent_calls: u32,
    /// Longest a call may last before it is ended with `max_duration`. An assistant may set a
    /// shorter limit, never a longer one.
    #[schema(minimum = 1, maximum = 3_600)]
    pub max_call_seconds: u32,
    /// Spending cap in US dollars per calendar month; `None` means no cap.
    #[schema(minimum = 0)]
    pub monthly_budget_usd: Option<f64>,
}

impl Limits {
    pub(crate) const MIN_CONCURRENT_CALLS: u32 = 1;
    /// Far above any single tenant's need; it bounds the damage of a typo.
    pub(crate) const MAX_CONCURRENT_CALLS: u32 = 10_000;
    pub(crate) const MIN_CALL_SECONDS: u32 = 1;
    /// One OpenAI Realtime session lasts at most 60 minutes and a call is one session, so no
    /// call can be longer (see `bridge.session_closing_secs` for how it ends).
    pub(crate) const MAX_CALL_SECONDS: u32 = 3_600;

    pub(crate) const DEFAULT_MAX_CONCURRENT_CALLS: u32 = 10;
    pub(crate) const DEFAULT_MAX_CALL_SECONDS: u32 = 3_600;

    /// Checks every bound; the error names the offending field.
    pub(crate) fn validate(&self) -> Result<(), ValidationError> {
        check_range(
            "max_concurrent_calls",
            self.max_concurrent_calls,
            Self::MIN_CONCURRENT_CALLS..=Self::MAX_CONCURRENT_CALLS,
        )?;
        check_call_seconds("max_call_seconds", self.max_call_seconds)?;
        let budget_ok = self
            .monthly_budget_usd
            .is_none_or(|budget| budget.is_finite() && budget >= 0.0);
        if !budget_ok {
            return Err(ValidationError::new(
                "monthly_budget_usd",
                "must be a number of at least 0",
            ));
        }
        Ok(())
    }
}

/// A `max_call_seconds` (a tenant's or an assistant's): at least 1, and at most OpenAI's cap on
/// one Realtime session, saying so when it is more.
pub(crate) fn check_call_seconds(field: &str, seconds: u32) -> Result<(), ValidationError> {
    if seconds > Limits::MAX_CALL_SECONDS {
        return Err(ValidationError::new(
            field,
            format!(
                "must be at most {}: an OpenAI Realtime session lasts at most 60 minutes, and a \
                 call is one session",
                Limits::MAX_CALL_SECONDS
            ),
        ));
    }
    check_range(
        field,
        seconds,
        Limits::MIN_CALL_SECONDS..=Limits::MAX_CALL_SECONDS,
    )
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_calls: Self::DEFAULT_MAX_CONCURRENT_CALLS,
            max_call_seconds: Self::DEFAULT_MAX_CALL_SECONDS,
            monthly_budget_usd: None,
        }
    }
}

/// Longest name of a tenant API key, in characters.
pub(crate) const API_KEY_NAME_MAX_CHARS: usize = 200;

/// Longest tenant name, in characters (the `users.name` schema bound).
pub(crate) const TENANT_NAME_MAX_CHARS: usize = 200;

/// Trims `name` and requires 1 to 200 characters; returns the trimmed name, which is what
/// should be stored. Errors name the field "name".
pub(crate) fn validate_tenant_name(name: &str) -> Result<String, ValidationError> {
    let trimmed = name.trim();
    check_name("name", trimmed, 1, TENANT_NAME_MAX_CHARS)?;
    Ok(trimmed.to_owned())
}

/// Trims an API key's `name` and requires 1 to [`API_KEY_NAME_MAX_CHARS`] characters, none of
/// them control or bidirectional-override characters; returns the trimmed name.
pub(crate) fn validate_api_key_name(name: &str) -> Result<String, ValidationError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > API_KEY_NAME_MAX_CHARS {
        return Err(ValidationError::new(
            "name",
            format!("must be 1 to {API_KEY_NAME_MAX_CHARS} characters"),
        ));
    }
    check_name("name", trimmed, 1, API_KEY_NAME_MAX_CHARS)?;
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_concurrent_calls: u32, max_call_seconds: u32, budget: Option<f64>) -> Limits {
        Limits {
            max_concurrent_calls,
            max_call_seconds,
            monthly_budget_usd: budget,
        }
    }

    fn field_of(result: Result<(), ValidationError>) -> String {
        result.expect_err("should be rejected").field
    }

    #[test]
    fn default_limits_are_valid() {
        let default = Limits::default();
        assert_eq!(default, limits(10, 3600, None));
        assert!(default.validate().is_ok());
    }

    #[test]
    fn limits_bounds_are_inclusive() {
        assert!(limits(1, 1, Some(0.0)).validate().is_ok());
        assert!(limits(10_000, 3_600, Some(1e9)).validate().is_ok());

        assert_eq!(
            field_of(limits(0, 60, None).validate()),
            "max_concurrent_calls"
        );
        assert_eq!(
            field_of(limits(10_001, 60, None).validate()),
            "max_concurrent_calls"
        );
        assert_eq!(field_of(limits(1, 0, None).validate()), "max_call_seconds");
        assert_eq!(
            field_of(limits(1, 86_401, None).validate()),
            "max_call_seconds"
        );
        for bad in [-0.01, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(
                field_of(limits(1, 60, Some(bad)).validate()),
                "monthly_budget_usd",
                "{bad}"
            );
        }
    }

    #[test]
    fn limits_serde_shape() {
        let json = serde_json::to_value(Limits::default()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "max_concurrent_calls": 10,
                "max_call_seconds": 3600,
                "monthly_budget_usd": null
            })
        );
        let parsed: Limits =
            serde_json::from_str(r#"{"max_concurrent_calls":3,"max_call_seconds":60}"#).unwrap();
        assert_eq!(parsed, limits(3, 60, None));
    }

    #[test]
    fn tenant_status_is_lowercase() {
        assert_eq!(
            serde_json::to_string(&TenantStatus::Suspended).unwrap(),
            "\"suspended\""
        );
        assert_eq!(
            serde_json::from_str::<TenantStatus>("\"active\"").unwrap(),
            TenantStatus::Active
        );
        assert!(serde_json::from_str::<TenantStatus>("\"Active\"").is_err());
    }

    #[test]
    fn tenant_name_is_trimmed_and_bounded() {
        assert_eq!(validate_tenant_name("  Acme Ltd \n").unwrap(), "Acme Ltd");
        assert!(validate_tenant_name(&"n".repeat(200)).is_ok());
        for bad in [String::new(), "   ".to_owned(), "n".repeat(201)] {
            assert_eq!(validate_tenant_name(&bad).unwrap_err().field, "name");
        }
    }
}
