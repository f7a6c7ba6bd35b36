-- A campaign's row holds its state and its budget; its definition is its current version's,
-- in campaign_versions, which every read of a campaign joins. Every order that draws on a
-- budget rewrites the row, so it keeps only what changes.
ALTER TABLE campaigns DROP COLUMN definition;
