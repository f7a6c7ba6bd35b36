-- The program's currency as a column of its own, kept by PostgreSQL from the settings: a
-- journal entry is written only in the currency the program stands at when the entry is
-- written (see `append_entry`), so an order that read the settings before a currency change
-- committed cannot leave an entry in the old currency after it.
ALTER TABLE program
    ADD COLUMN currency TEXT GENERATED ALWAYS AS ((settings::jsonb) ->> 'currency') STORED;
