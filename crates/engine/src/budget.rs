//! Budget caps, enforced where a model is called.
//!
//! Before each model call ([`crate::step::call_model`]) the call's largest possible cost — its
//! provider's token bounds at the model's price — is reserved in every window of every cap that
//! applies to the turn (its scope, its agent, its user), atomically, in the store: concurrent
//! calls on any replica never take a window past its limit. When the call ends (answered,
//! failed or stopped) the reservation becomes its real cost, exactly once. A cap's turn limit is
//! checked when a turn starts. A store error fails closed: the turn ends.
//!
//! When a cap is reached the turn ends with `error{code:"budget_cap"}` + `done`, or — with the
//! agent's `on_budget = "pause"` — parks (`waiting`, reason `budget`) until the cap is raised,
//! overridden or its window rolls over; the sweep here queues it again then. Crossing an alert
//! threshold POSTs to the cap's webhook (retried) and tells the scope's operator sockets, once per
//! cap, window and threshold.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentry_core::{BudgetCap, MicroCents, SafetyFlag, Scope, Timestamp, Turn};
use agentry_store::{Charge, Crossed, Lease, ModelCall, Reservation, StoreError};
use serde_json::{Value, json};

use crate::Engine;
use crate::bus::Bell;

/// How long a replica trusts its copy of a scope's caps (a change here, or a bell from the
/// replica that made it, drops it sooner).
const CAPS_TTL: Duration = Duration::from_secs(2);
/// Attempts to deliver an alert to a webhook.
const WEBHOOK_ATTEMPTS: u32 = 3;

/// Caps per scope, as recently read.
#[derive(Default)]
pub(crate) struct CapsCache {
    scopes: Mutex<HashMap<Scope, CachedCaps>>,
}

/// A scope's caps and when they were read.
type CachedCaps = (Instant, Arc<Vec<BudgetCap>>);

/// A cap that stops a turn, and why.
#[derive(Debug, Clone)]
pub(crate) struct BudgetHit {
    pub cap: BudgetCap,
    pub message: String,
}

impl BudgetHit {
    /// The `budget` flag of the turn's `error`.
    pub(crate) fn flag(&self) -> SafetyFlag {
        SafetyFlag {
            kind: "budget".into(),
            severity: "high".into(),
            detail: self.message.clone(),
            matched_text: None,
            pii_type: None,
            injection_pattern: None,
        }
    }
}

/// Why a budget check did not pass.
pub(crate) enum BudgetStop {
    /// A cap is reached.
    Hit(Box<BudgetHit>),
    /// The store failed: fail closed.
    Store(StoreError),
}

impl From<StoreError> for BudgetStop {
    fn from(err: StoreError) -> Self {
        BudgetStop::Store(err)
    }
}

/// A reservation held for a model call, to settle when it ends.
pub(crate) struct Held {
    reservation: Reservation,
    caps: Vec<BudgetCap>,
}

impl Engine {
    /// The agents of a scope a money cap would apply to whose model has no price (a cap cannot
    /// count what they spend): `(agent id, model)`.
    pub async fn unpriced_agents_under(&self, cap: &BudgetCap) -> Result<Vec<(String, String)>, StoreError> {
        let agents = self.store().list_agents(&cap.scope).await?;
        Ok(agents
            .into_iter()
            .filter(|a| cap.scope_type != agentry_core::CapScope::Agent || a.spec.id == cap.target_id)
            .filter(|a| self.inner.providers.price(&a.spec.model).is_none())
            .map(|a| (a.spec.id, a.spec.model))
            .collect())
    }

    /// Refuses an agent whose model has no price when a money cap of `scope` applies to it.
    pub async fn check_agent_budget(&self, scope: &Scope, agent: &agentry_core::AgentSpec) -> Result<(), String> {
        check_priced_under_caps(self.store(), &self.inner.providers, scope, agent).await
    }

    /// The caps of a scope (cached for a moment).
    pub(crate) async fn caps(&self, scope: &Scope) -> Result<Arc<Vec<BudgetCap>>, StoreError> {
        {
            let scopes = self.inner.caps.scopes.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, caps)) = scopes.get(scope)
                && at.elapsed() < CAPS_TTL
            {
                return Ok(caps.clone());
            }
        }
        let caps = Arc::new(self.store().list_budget_caps(scope).await?);
        let mut scopes = self.inner.caps.scopes.lock().unwrap_or_else(|p| p.into_inner());
        scopes.insert(scope.clone(), (Instant::now(), caps.clone()));
        Ok(caps)
    }

    /// Forgets a scope's caps here and on every replica (they changed), and looks at the turns
    /// that wait for a budget.
    pub fn budget_changed(&self, scope: &Scope) {
        self.forget_caps(scope);
        self.inner.bus.ring(Bell::Budgets { scope: scope.clone() });
        let engine = self.clone();
        tokio::spawn(async move { engine.sweep_budgets().await });
    }

    pub(crate) fn forget_caps(&self, scope: &Scope) {
        self.inner.caps.scopes.lock().unwrap_or_else(|p| p.into_inner()).remove(scope);
    }

    /// The windows a turn counts in now, with the caps they belong to; `limit` picks the limit
    /// that applies (money or turns). An overridden cap counts without a limit.
    fn charges(
        caps: &[BudgetCap],
        turn: &Turn,
        now: Timestamp,
        limit: impl Fn(&BudgetCap) -> Option<i64>,
    ) -> Vec<(BudgetCap, Charge)> {
        caps.iter()
            .filter_map(|cap| {
                let subject = cap.subject_for(&turn.agent_id, &turn.user_id)?;
                let limit = if cap.override_active(now) { None } else { limit(cap) };
                Some((cap.clone(), Charge::new(cap, subject, now, limit)))
            })
            .collect()
    }

    /// Counts a starting turn against the turn limits of its caps. `false`: no cap that applies
    /// limits turns, nothing was counted (the first call's settlement counts the turn).
    pub(crate) async fn count_turn(&self, turn: &Turn) -> Result<bool, BudgetStop> {
        let caps = self.caps(&turn.scope).await?;
        let charges = Engine::charges(&caps, turn, Timestamp::now(), |cap| cap.turns_limit);
        if !charges.iter().any(|(cap, _)| cap.turns_limit.is_some()) {
            return Ok(false);
        }
        let only: Vec<Charge> = charges.iter().map(|(_, c)| c.clone()).collect();
        match self.store().count_turn(&only).await? {
            Ok(()) => Ok(true),
            Err(cap_id) => Err(hit(charges, &cap_id, "turn")),
        }
    }

    /// Reserves a model call's largest possible cost (`amount`) against every cap that applies
    /// to the turn; `count_turn`: its settlement also counts the turn in those windows. `None`:
    /// no cap applies (nothing to settle).
    pub(crate) async fn reserve(
        &self,
        turn: &Turn,
        lease: &Lease,
        call_id: &str,
        amount: MicroCents,
        count_turn: bool,
    ) -> Result<Option<Held>, BudgetStop> {
        let caps = self.caps(&turn.scope).await?;
        let charges = Engine::charges(&caps, turn, Timestamp::now(), |cap| Some(cap.limit.0));
        if charges.is_empty() {
            return Ok(None);
        }
        let reservation = Reservation {
            id: call_id.to_owned(),
            turn_id: turn.id.clone(),
            lease_token: lease.token,
            amount,
            count_turn,
            charges: charges.iter().map(|(_, c)| c.clone()).collect(),
        };
        match self.store().reserve_budget(&reservation).await? {
            Ok(()) => Ok(Some(Held { reservation, caps: charges.into_iter().map(|(cap, _)| cap).collect() })),
            Err(cap_id) => Err(hit(charges, &cap_id, "spend")),
        }
    }

    /// Ends a model call that held a reservation: records it, swaps the reservation for its real
    /// cost, and announces thresholds it crossed.
    pub(crate) async fn settle(&self, held: Held, call: &ModelCall) -> Result<(), StoreError> {
        let thresholds: Vec<(String, Vec<u32>)> =
            held.caps.iter().map(|c| (c.id.clone(), c.alert_thresholds.clone())).collect();
        let crossed = self.store().settle_reservation(&held.reservation, call, &thresholds).await?;
        for crossed in crossed {
            if let Some(cap) = held.caps.iter().find(|c| c.id == crossed.window.cap_id) {
                self.alert(cap, &crossed);
            }
        }
        Ok(())
    }

    /// Tells the scope's operators (every replica) and the cap's webhook that a threshold was
    /// crossed.
    fn alert(&self, cap: &BudgetCap, crossed: &Crossed) {
        let event = json!({
            "type": "budget_alert",
            "capId": cap.id,
            "scopeType": cap.scope_type.as_str(),
            "targetId": cap.target_id,
            "subject": crossed.window.subject,
            "period": cap.period.as_str(),
            "windowKey": crossed.window.window_key,
            "threshold": crossed.threshold,
            "spentCents": crossed.spent.as_cents(),
            "limitCents": crossed.limit.as_cents(),
            "organizationId": cap.scope.organization_id,
            "projectId": cap.scope.project_id,
            "environmentId": cap.scope.environment_id,
            "ts": Timestamp::now().0,
        });
        tracing::info!(cap = %cap.id, window = %crossed.window.window_key, threshold = crossed.threshold, "budget threshold crossed");
        self.inner.hub.publish_scope(&cap.scope, crate::hub::ScopeEvent::Alert(Arc::new(event.clone())));
        self.inner.bus.ring(Bell::ScopeAlert { scope: cap.scope.clone(), event: event.clone() });
        if let Some(url) = cap.alert_webhook_url.clone() {
            let engine = self.clone();
            tokio::spawn(async move { engine.post_alert(&url, &event).await });
        }
    }

    /// POSTs an alert, retrying; refuses loopback and private addresses unless allowed.
    async fn post_alert(&self, url: &str, event: &Value) {
        if !self.config().allow_private_webhooks
            && let Err(why) = public_address(url).await
        {
            tracing::warn!(%url, %why, "budget alert webhook refused");
            return;
        }
        for attempt in 1..=WEBHOOK_ATTEMPTS {
            let sent = self.inner.tool_env.http.post(url).json(event).timeout(Duration::from_secs(10)).send().await;
            match sent {
                Ok(response) if response.status().is_success() => return,
                Ok(response) => {
                    tracing::warn!(%url, status = %response.status(), attempt, "budget alert webhook failed")
                }
                Err(err) => tracing::warn!(%url, %err, attempt, "budget alert webhook failed"),
            }
            tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
        }
    }

    /// Releases reservations of calls that died with their replica, and queues the turns waiting
    /// for a budget that allows them again.
    pub(crate) async fn sweep_budgets(&self) {
        match self.store().release_stale_reservations().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(reservations = n, "released budget reservations of calls that did not end"),
            Err(err) => tracing::warn!(%err, "releasing stale budget reservations failed"),
        }
        let waiting = match self.store().turns_waiting_for_budget().await {
            Ok(waiting) => waiting,
            Err(err) => {
                tracing::warn!(%err, "reading the turns waiting for a budget failed");
                return;
            }
        };
        for turn in waiting {
            match self.budget_allows(&turn).await {
                Ok(true) => {
                    if let Ok(true) = self.store().requeue_waiting_turn(&turn.id).await {
                        tracing::info!(turn = %turn.id, "a budget allows the waiting turn again");
                        self.inner.dispatcher.wake();
                        self.inner.bus.ring(Bell::Queued);
                    }
                }
                Ok(false) => {}
                Err(err) => tracing::warn!(%err, turn = %turn.id, "cannot check a waiting turn's budget"),
            }
        }
    }

    /// Whether every cap of a waiting turn has room (spend below its limit, turns below theirs).
    async fn budget_allows(&self, turn: &Turn) -> Result<bool, StoreError> {
        self.forget_caps(&turn.scope);
        let caps = self.caps(&turn.scope).await?;
        let now = Timestamp::now();
        let money = Engine::charges(&caps, turn, now, |cap| Some(cap.limit.0));
        let charges: Vec<Charge> = money.iter().map(|(_, c)| c.clone()).collect();
        let states = self.store().budget_windows(&charges).await?;
        Ok(money.iter().zip(&states).all(|((cap, charge), state)| {
            let money_room = charge.limit.is_none_or(|limit| state.spent.0 + state.reserved.0 < limit);
            let turns_room = cap.override_active(now) || cap.turns_limit.is_none_or(|limit| state.turns < limit);
            money_room && turns_room
        }))
    }
}

/// What the turn learns about the cap it hit (`what`: `turn` or `spend`).
fn hit(charges: Vec<(BudgetCap, Charge)>, cap_id: &str, what: &str) -> BudgetStop {
    let Some(cap) = charges.into_iter().map(|(cap, _)| cap).find(|c| c.id == cap_id) else {
        return BudgetStop::Store(StoreError::Corrupt(format!("budget cap {cap_id} vanished")));
    };
    let whom = match cap.scope_type {
        agentry_core::CapScope::Scope => "this scope".to_owned(),
        agentry_core::CapScope::Agent => format!("agent `{}`", cap.target_id),
        agentry_core::CapScope::User if cap.target_id == "*" => "each user".to_owned(),
        agentry_core::CapScope::User => format!("user `{}`", cap.target_id),
    };
    let (period, id) = (cap.period.as_str(), &cap.id);
    let message = match what {
        "turn" => {
            format!("budget cap {id} reached: {whom} may start {} turns per {period}", cap.turns_limit.unwrap_or(0))
        }
        _ => format!("budget cap {id} reached: {whom} may spend {} cents per {period}", cap.limit.as_cents()),
    };
    BudgetStop::Hit(Box::new(BudgetHit { cap, message }))
}

/// Refuses an agent whose model has no price when a money cap of `scope` applies to it (a cap
/// cannot count what such a model spends). For the CLI, which applies agent files on a store.
pub async fn check_priced_under_caps(
    store: &agentry_store::Store,
    providers: &agentry_llm::ProviderRegistry,
    scope: &Scope,
    agent: &agentry_core::AgentSpec,
) -> Result<(), String> {
    if providers.price(&agent.model).is_some() {
        return Ok(());
    }
    let caps = store.list_budget_caps(scope).await.map_err(|e| e.to_string())?;
    let applies = |cap: &&BudgetCap| {
        cap.enabled && (cap.scope_type != agentry_core::CapScope::Agent || cap.target_id == agent.id)
    };
    match caps.iter().find(applies) {
        Some(cap) => Err(format!(
            "model: `{}` has no price, and budget cap {} counts spend for this agent: give the model a price \
             ([prices.\"{}\"] or the provider's prices)",
            agent.model, cap.id, agent.model
        )),
        None => Ok(()),
    }
}

/// Refuses URLs whose host resolves to a loopback, private, link-local or unspecified address
/// (an alert must not reach into the server's own network unless the operator allows it).
async fn public_address(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let host = parsed.host_str().ok_or("no host")?.to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addresses = tokio::net::lookup_host((host.as_str(), port)).await.map_err(|e| format!("cannot resolve: {e}"))?;
    for address in addresses {
        let ip = address.ip();
        let private = match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified(),
            IpAddr::V6(v6) => v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        };
        if private {
            return Err(format!("{host} resolves to {ip}, a loopback or private address (set allow_private_webhooks)"));
        }
    }
    Ok(())
}
