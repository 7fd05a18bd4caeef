//! The operator resources: tools (switches, health) and API keys.
