//! Budget caps and their status (`/budgets/*`).
