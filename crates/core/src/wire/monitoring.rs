//! Turns, model calls, traces and spans, cost rollups and the summary (`/monitoring/*`, `/turns`).
