//! Human approvals and the safety ledger (`/monitoring/approvals`, `/approvals/{id}/resolve`,
//! `/monitoring/safety-events`).
