-- Cost rollups count each turn once, where its first model call falls, so that the rows of any
-- grouping add up to the total without a second scan (and without COUNT(DISTINCT), which dominated
-- a rollup's time on 100,000 calls). A call opens its turn when the turn had no call yet; the calls
-- already in the ledger are marked here, the earliest of each turn.
ALTER TABLE model_calls ADD COLUMN opens_turn BIGINT NOT NULL DEFAULT 0;
UPDATE model_calls SET opens_turn = 1
WHERE NOT EXISTS (
    SELECT 1 FROM model_calls earlier
    WHERE earlier.turn_id = model_calls.turn_id
      AND (earlier.started_at < model_calls.started_at
           OR (earlier.started_at = model_calls.started_at AND earlier.id < model_calls.id))
);
