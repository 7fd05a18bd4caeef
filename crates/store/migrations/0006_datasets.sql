-- Uploaded datasets: metadata and the uploaded text (`source`, CSV or JSON) here; the rows are
-- queried from one SQLite file per dataset (agentry-datasets), which any replica rebuilds from
-- the source when it does not have it.
CREATE TABLE datasets (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    slug            TEXT NOT NULL,
    name            TEXT NOT NULL,
    thread_id       TEXT,
    created_by      TEXT NOT NULL,
    columns_json    TEXT NOT NULL,
    row_count       BIGINT NOT NULL,
    format          TEXT NOT NULL,
    source          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (organization_id, project_id, environment_id, slug)
);

-- Datasets attached to threads (`POST /threads {datasetIds}`): whoever may see the thread may use them.
CREATE TABLE thread_datasets (
    thread_id  TEXT NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    dataset_id TEXT NOT NULL,
    PRIMARY KEY (thread_id, dataset_id)
);
