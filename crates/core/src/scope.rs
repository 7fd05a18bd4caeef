//! Tenancy: the scope tuple every row carries, and the principal acting in it.

use serde::{Deserialize, Serialize};

/// The tenancy tuple `(organizationId, projectId, environmentId)`.
///
/// Every stored row carries one, and every query filters by one: a row of another scope is
/// indistinguishable from a missing row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    /// Organization (tenant) id.
    pub organization_id: String,
    /// Project id inside the organization.
    pub project_id: String,
    /// Environment id inside the project (e.g. `prod`, `staging`).
    pub environment_id: String,
}

impl Scope {
    /// Builds a scope from its three parts.
    pub fn new(
        organization_id: impl Into<String>,
        project_id: impl Into<String>,
        environment_id: impl Into<String>,
    ) -> Self {
        Scope {
            organization_id: organization_id.into(),
            project_id: project_id.into(),
            environment_id: environment_id.into(),
        }
    }

    /// The scope that a fresh installation bootstraps: `default/default/default`.
    pub fn default_scope() -> Self {
        Scope::new("default", "default", "default")
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.organization_id, self.project_id, self.environment_id)
    }
}

/// Optional identity details signed into a session token, used for `{{user.name}}` / `{{user.email}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMeta {
    /// Display name of the end user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Email of the end user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// How a principal authenticated, which decides what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An end user holding a session token: sees only its own threads.
    EndUser,
    /// A trusted server holding an API key: manages agents; with a user id it acts as that user,
    /// without one it sees every user's threads in the scope.
    Operator,
}

/// Who is making a request, in which scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The scope every query of this request is confined to.
    pub scope: Scope,
    /// The acting end user, if any. Always set for [`PrincipalKind::EndUser`].
    pub user_id: Option<String>,
    /// End user or operator.
    pub kind: PrincipalKind,
    /// Identity details from the token.
    pub user_meta: UserMeta,
    /// When set, the principal may only use this agent (the token's `agentId` claim).
    pub pinned_agent_id: Option<String>,
}

impl Principal {
    /// True for trusted server-to-server callers.
    pub fn is_operator(&self) -> bool {
        self.kind == PrincipalKind::Operator
    }

    /// The user id under which new threads are recorded.
    pub fn owner_id(&self) -> &str {
        self.user_id.as_deref().unwrap_or(OPERATOR_USER_ID)
    }

    /// The user whose threads this principal may see: `None` means every user of the scope
    /// (an operator without a user id).
    pub fn thread_owner_filter(&self) -> Option<&str> {
        match (self.kind, self.user_id.as_deref()) {
            (PrincipalKind::Operator, None) => None,
            (_, user) => Some(user.unwrap_or(OPERATOR_USER_ID)),
        }
    }

    /// Whether this principal may use the given agent (a pinned token allows only its agent).
    pub fn may_use_agent(&self, agent_id: &str) -> bool {
        self.pinned_agent_id.as_deref().is_none_or(|pinned| pinned == agent_id)
    }
}

/// The owner recorded for threads an operator creates without naming a user.
pub const OPERATOR_USER_ID: &str = "operator";

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(kind: PrincipalKind, user: Option<&str>) -> Principal {
        Principal {
            scope: Scope::default_scope(),
            user_id: user.map(str::to_owned),
            kind,
            user_meta: UserMeta::default(),
            pinned_agent_id: None,
        }
    }

    #[test]
    fn operator_without_user_sees_all_threads() {
        assert_eq!(principal(PrincipalKind::Operator, None).thread_owner_filter(), None);
        assert_eq!(principal(PrincipalKind::Operator, Some("u1")).thread_owner_filter(), Some("u1"));
        assert_eq!(principal(PrincipalKind::EndUser, Some("u2")).thread_owner_filter(), Some("u2"));
    }

    #[test]
    fn pinned_principal_may_only_use_its_agent() {
        let mut p = principal(PrincipalKind::EndUser, Some("u"));
        assert!(p.may_use_agent("a"));
        p.pinned_agent_id = Some("a".into());
        assert!(p.may_use_agent("a"));
        assert!(!p.may_use_agent("b"));
    }
}
