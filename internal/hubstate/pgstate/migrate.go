package pgstate

import (
	"context"
	"lifeline/internal/pgschema"

	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the schema's steps; versions count from 1 without gaps. Later
// steps are appended by the init functions of files of their own (migrate_v6.go,
// …), so the order of this slice is the order Go ran those, and schema sorts it.
//
// Times are timestamptz, NULL where the hubstate field is the zero time. Text that
// hubstate leaves empty is the empty string rather than NULL, so that reading a row back gives
// exactly what was written.
var migrations = []pgschema.Step{
	{Version: 1, Name: "registry and accounts", SQL: `
CREATE TABLE devices (
	id          text PRIMARY KEY,
	state       text NOT NULL CHECK (state IN ('pending', 'active', 'revoked')),
	serial      text NOT NULL DEFAULT '',
	enrolled_at timestamptz,
	revoked_at  timestamptz,
	not_after   timestamptz
);
-- Only a hash of each code's secret is kept, so that reading the state gives away
-- no code that still works.
CREATE TABLE enrolment_codes (
	hash    text PRIMARY KEY,
	device  text NOT NULL REFERENCES devices (id),
	expires timestamptz NOT NULL,
	used_at timestamptz
);
CREATE TABLE users (
	id            text PRIMARY KEY,
	name          text NOT NULL,
	role          text NOT NULL,
	language      text NOT NULL,
	password_hash text NOT NULL,
	disabled      boolean NOT NULL DEFAULT false,
	created       timestamptz,
	changed       timestamptz
);
CREATE TABLE sessions (
	hash      text PRIMARY KEY,
	user_id   text NOT NULL REFERENCES users (id),
	created   timestamptz,
	last_used timestamptz,
	remote    text NOT NULL DEFAULT ''
);
-- CreateSession trims a user's sessions, least recently used first.
CREATE INDEX sessions_by_user ON sessions (user_id, last_used);
CREATE TABLE sign_in_links (
	hash    text PRIMARY KEY,
	user_id text NOT NULL REFERENCES users (id),
	expires timestamptz NOT NULL,
	used_at timestamptz
);
`},
	{Version: 2, Name: "studies: uploads, archive index, quarantine, study records, deliveries", SQL: `
CREATE TABLE uploads (
	id               text PRIMARY KEY,
	device           text NOT NULL,
	sop_instance_uid text NOT NULL,
	sop_class_uid    text NOT NULL DEFAULT '',
	study_uid        text NOT NULL,
	transfer_syntax  text NOT NULL DEFAULT '',
	length           bigint NOT NULL CHECK (length >= 0),
	sha256           text NOT NULL,
	"offset"         bigint NOT NULL DEFAULT 0 CHECK ("offset" BETWEEN 0 AND length),
	complete         boolean NOT NULL DEFAULT false,
	created_at       timestamptz
);
-- The archive index: the first verified copy of each SOP Instance UID, from any box.
-- owed marks a delivery to the PACS still to be made.
CREATE TABLE instances (
	sop_instance_uid text PRIMARY KEY,
	sop_class_uid    text NOT NULL DEFAULT '',
	study_uid        text NOT NULL,
	transfer_syntax  text NOT NULL DEFAULT '',
	device           text NOT NULL,
	size             bigint NOT NULL,
	sha256           text NOT NULL,
	path             text NOT NULL DEFAULT '',
	received_at      timestamptz,
	verified_at      timestamptz,
	delivered_at     timestamptz,
	attempts         integer NOT NULL DEFAULT 0,
	last_error       text NOT NULL DEFAULT '',
	next_attempt     timestamptz,
	owed             boolean NOT NULL DEFAULT false
);
-- DueDeliveries reads only what is owed, which stays small beside the archive.
CREATE INDEX instances_owed ON instances (next_attempt NULLS FIRST, sop_instance_uid) WHERE owed;
-- Copies whose SOP Instance UID the archive holds with other content, one per box
-- and digest, held for an operator and never delivered.
CREATE TABLE quarantine (
	sop_instance_uid text NOT NULL,
	device           text NOT NULL,
	sha256           text NOT NULL,
	sop_class_uid    text NOT NULL DEFAULT '',
	study_uid        text NOT NULL,
	transfer_syntax  text NOT NULL DEFAULT '',
	size             bigint NOT NULL,
	path             text NOT NULL DEFAULT '',
	received_at      timestamptz,
	verified_at      timestamptz,
	clash_sha256     text NOT NULL DEFAULT '',
	clash_device     text NOT NULL DEFAULT '',
	PRIMARY KEY (sop_instance_uid, device, sha256)
);
-- One box's record of one study; its expected instances are rows of
-- study_instances, so that a manifest of hundreds of instances is merged row by row.
CREATE TABLE studies (
	study_uid    text NOT NULL,
	device       text NOT NULL,
	patient_id   text NOT NULL DEFAULT '',
	modality     text NOT NULL DEFAULT '',
	priority     text NOT NULL DEFAULT '',
	manifest_at  timestamptz,
	received_at  timestamptz,
	verified_at  timestamptz,
	delivered_at timestamptz,
	PRIMARY KEY (study_uid, device)
);
CREATE INDEX studies_recent ON studies (manifest_at DESC NULLS LAST);
CREATE TABLE study_instances (
	study_uid        text NOT NULL,
	device           text NOT NULL,
	sop_instance_uid text NOT NULL,
	sha256           text NOT NULL,
	PRIMARY KEY (study_uid, device, sop_instance_uid),
	FOREIGN KEY (study_uid, device) REFERENCES studies (study_uid, device)
);
`},
	{Version: 3, Name: "several hubs: one certificate authority, the shared audit trail", SQL: `
-- The fingerprint of the certificate authority every hub on this database signs and
-- trusts boxes with; one row, written by the first hub to start.
CREATE TABLE hub_authority (
	one         boolean PRIMARY KEY DEFAULT true CHECK (one),
	fingerprint text NOT NULL,
	adopted_at  timestamptz NOT NULL DEFAULT now()
);
-- The audit trail of every hub, append-only. json, not jsonb: each line is kept as
-- its hub wrote it, byte for byte.
CREATE TABLE audit_trail (
	seq   bigserial PRIMARY KEY,
	at    timestamptz NOT NULL,
	event text NOT NULL,
	host  text NOT NULL DEFAULT '',
	line  json NOT NULL
);
CREATE INDEX audit_trail_at ON audit_trail (at);
-- Append-only even for the hubs' own database user: changing or removing a line is
-- refused by the database itself, not only by the hubs' code.
CREATE FUNCTION audit_trail_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'the audit trail is append-only: % refused', TG_OP;
END $$;
CREATE TRIGGER audit_trail_no_change BEFORE UPDATE OR DELETE ON audit_trail
	FOR EACH ROW EXECUTE FUNCTION audit_trail_append_only();
CREATE TRIGGER audit_trail_no_truncate BEFORE TRUNCATE ON audit_trail
	FOR EACH STATEMENT EXECUTE FUNCTION audit_trail_append_only();
`},
	{Version: 4, Name: "each instance's archive, so that a hub delivers only the files it holds", SQL: `
-- The archive (a hub's directory on its machine) that holds the instance's file;
-- empty for instances archived before several hubs shared the database, which any
-- hub may deliver.
ALTER TABLE instances ADD COLUMN archive text NOT NULL DEFAULT '';
CREATE INDEX instances_owed_by_archive ON instances (archive, next_attempt NULLS FIRST, sop_instance_uid) WHERE owed;
`},
	{Version: 5, Name: "the boxes' latest reports and live sessions, for every hub", SQL: `
-- One row per box: its latest report (position, mission, link), replaced by the next.
CREATE TABLE box_reports (
	device text PRIMARY KEY,
	hub    text NOT NULL,
	at     timestamptz NOT NULL,
	report json NOT NULL
);
-- Which hub last said it holds each box's live session, and when.
CREATE TABLE live_sessions (
	device  text PRIMARY KEY,
	hub     text NOT NULL,
	seen_at timestamptz NOT NULL
);
`},
	{Version: 6, Name: "claims on deliveries, so that hubs sharing an archive deliver each instance once", SQL: `
-- The hub that is delivering the instance now, and until when its claim holds
-- (the database's clock). A claim whose hub died runs out, and another hub takes
-- the delivery over.
ALTER TABLE instances ADD COLUMN claimed_by text NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN claimed_until timestamptz;
`},
	// Version 7: a viewer signed in at one hub watches a box that publishes to another
	// (docs/multi-hub.md, "Live sessions"). Each hub says with its marks where its
	// viewers connect, so that the others can hand a doctor over to it, and the hubs
	// record which key their viewer tokens are signed with, so that a token issued at
	// one plays at every other.
	{Version: 7, Name: "live sessions with their hub's viewer address; one viewer-token key for every hub", SQL: `
-- Where the viewers of the hub holding the session connect, e.g.
-- https://hub-a.example:8444; empty for marks of a hub that did not say.
ALTER TABLE live_sessions ADD COLUMN viewer_url text NOT NULL DEFAULT '';
-- The fingerprint of the key viewer tokens are signed with; one row, written by the
-- first hub to start. The key itself is a file copied between the hubs, as the
-- authority's is.
CREATE TABLE hub_viewer_key (
	one         boolean PRIMARY KEY DEFAULT true CHECK (one),
	fingerprint text NOT NULL
);
`},
}

// schema is the hub's state in the database; hubs starting at the same moment
// against an empty database migrate it once, under the lock "Lifl".
var schema = pgschema.Schema{What: "the hub's state", Table: "schema_migrations", Lock: 0x4c69666c, Steps: migrations}

// migrate brings the hub's state up to version upTo and returns the version the
// database is at.
func migrate(ctx context.Context, pool *pgxpool.Pool, upTo int) (int, error) {
	return schema.Migrate(ctx, pool, upTo)
}
