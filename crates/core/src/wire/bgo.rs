//! Background operations: tasks, runs and their attempts, schedules, batches (`/bgo/*`).
