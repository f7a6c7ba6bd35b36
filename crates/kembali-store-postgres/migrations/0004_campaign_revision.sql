-- The campaign revision every order reads before it reuses its cached campaign set: one
-- row, moved by every new campaign version, instead of a sum over every campaign's row.
CREATE TABLE campaign_revision (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    revision  BIGINT  NOT NULL
);
INSERT INTO campaign_revision (id, revision) SELECT 1, COALESCE(SUM(version), 0) FROM campaigns;
