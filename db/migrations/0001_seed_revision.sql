-- The single desired-state revision row.
INSERT INTO "state_revision" ("id", "value") VALUES (1, 0) ON CONFLICT DO NOTHING;
