package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"kadenz/store"
)

// How this store keeps the campaign tallies (store/campaigntallies.go):
// campaign_tallies counts each campaign's envelopes by state, holdout and
// deferred ('e'), the reasons of its suppressed ones ('r') and its
// messages that have an envelope ('m'), moved by triggers as the hourly
// tallies are (tallies.go: the same shards, the same transactions, an
// accept counting its own); campaign_messages has a row for each message
// with a campaign, with its subject and how many envelopes it has, for a
// campaign's page of envelopes and its latest subject. Envelope inserts
// and deletes move that count (and 'm' when it leaves or reaches zero);
// updates, the bulk of the writes, leave it alone.
//
// Schema version 3 adds both tables, the functions and triggers, and
// fills them from what the database holds (campaignsBackfill). On
// CockroachDB, without triggers, only the tables are made and the reads
// walk the envelopes.

var campaignsTables = []string{
	`CREATE TABLE IF NOT EXISTS campaign_tallies (
		campaign TEXT COLLATE "C" NOT NULL,
		kind TEXT NOT NULL,
		state TEXT NOT NULL,
		holdout BOOLEAN NOT NULL,
		deferred BOOLEAN NOT NULL,
		label TEXT NOT NULL,
		shard INT NOT NULL,
		n BIGINT NOT NULL,
		PRIMARY KEY (campaign, kind, state, holdout, deferred, label, shard))`,
	`CREATE TABLE IF NOT EXISTS campaign_messages (
		message_id TEXT COLLATE "C" PRIMARY KEY,
		campaign TEXT COLLATE "C" NOT NULL,
		subject TEXT NOT NULL,
		envelopes BIGINT NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS campaign_messages_campaign ON campaign_messages (campaign, message_id)`,
}

func campaignsMigration() []string {
	return slices.Concat(campaignsFunctions, campaignsTriggers, campaignsBackfill)
}

var campaignsFunctions = []string{
	// One envelope's contribution, with its sign: campaign NULL counts
	// nothing; records are its decision records (elements joined by
	// commas, NULL: none).
	`CREATE TYPE kadenz_ctally_change AS (sign INT, campaign TEXT, state TEXT, holdout BOOLEAN, records BYTEA)`,
	// kadenz_campaign_of reads a message's campaign and subject as
	// store.CampaignOf does: both empty unless the features are an object
	// (or absent) whose campaign and subject are strings or null. An empty
	// campaign comes back NULL.
	`CREATE OR REPLACE FUNCTION kadenz_campaign_of(data BYTEA, OUT campaign TEXT, OUT subject TEXT)
	LANGUAGE plpgsql IMMUTABLE AS $f$
	DECLARE
		f JSONB := convert_from(data, 'UTF8')::jsonb->'features';
	BEGIN
		subject := '';
		IF f IS NULL OR jsonb_typeof(f) <> 'object'
			OR coalesce(jsonb_typeof(f->'campaign'), 'null') NOT IN ('string', 'null')
			OR coalesce(jsonb_typeof(f->'subject'), 'null') NOT IN ('string', 'null') THEN
			RETURN;
		END IF;
		campaign := nullif(f->>'campaign', '');
		subject := coalesce(f->>'subject', '');
	END
	$f$`,
	// kadenz_records_deferred: whether any record deferred the envelope,
	// each read as kadenz_last_decision reads the last (false when the list
	// does not parse, as store.deferredIn).
	`CREATE OR REPLACE FUNCTION kadenz_records_deferred(records BYTEA) RETURNS BOOLEAN
	LANGUAGE plpgsql IMMUTABLE AS $f$
	DECLARE
		l JSONB;
		x JSONB;
	BEGIN
		IF records IS NULL OR position('"defer"'::bytea IN records) = 0 THEN
			RETURN false;
		END IF;
		BEGIN
			l := ('[' || convert_from(records, 'UTF8') || ']')::jsonb;
		EXCEPTION WHEN others THEN
			RETURN false;
		END;
		FOR x IN SELECT jsonb_array_elements(l) LOOP
			IF (kadenz_last_decision(convert_to(x::text, 'UTF8'))).action = 'defer' THEN
				RETURN true;
			END IF;
		END LOOP;
		RETURN false;
	END
	$f$`,
	// kadenz_ctally_apply adds contributions to the session's shard: one
	// 'e' row per envelope, and for a suppressed one an 'r' row per reason
	// code of its last record.
	`CREATE OR REPLACE FUNCTION kadenz_ctally_apply(changes kadenz_ctally_change[]) RETURNS VOID
	LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $f$
	DECLARE
		s_shard INT := kadenz_tally_shard();
	BEGIN
		IF coalesce(cardinality(changes), 0) = 0 THEN
			RETURN;
		END IF;
		INSERT INTO campaign_tallies (campaign, kind, state, holdout, deferred, label, shard, n)
		SELECT r.campaign, r.kind, r.state, r.holdout, r.deferred, r.label, s_shard, sum(r.sign)
		FROM (
			SELECT c.sign, c.campaign, 'e' AS kind, c.state, c.holdout, kadenz_records_deferred(c.records) AS deferred, '' AS label
			FROM unnest(changes) c WHERE c.campaign IS NOT NULL
			UNION ALL
			SELECT c.sign, c.campaign, 'r', '', false, false, coalesce(reason, '')
			FROM unnest(changes) c CROSS JOIN LATERAL kadenz_last_decision(c.records) ld
				CROSS JOIN LATERAL unnest(CASE WHEN ld.action IS NULL THEN '{}'::text[] ELSE ld.reasons END) reason
			WHERE c.campaign IS NOT NULL AND c.state = 'suppressed') r
		GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(r.sign) <> 0
		ORDER BY 1, 2, 3, 4, 5, 6
		ON CONFLICT (campaign, kind, state, holdout, deferred, label, shard) DO UPDATE SET n = campaign_tallies.n + excluded.n;
	END
	$f$`,
	// Envelope rows inserted or deleted: each counts, or stops counting,
	// with its message's campaign and its records as they are.
	`CREATE OR REPLACE FUNCTION kadenz_ctally_envelopes(sign INT, rows kadenz_tally_env[]) RETURNS VOID
	LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $f$
	BEGIN
		PERFORM kadenz_ctally_apply(ARRAY(
			SELECT ROW(sign, cm.campaign, r.state,
				coalesce((convert_from(r.data, 'UTF8')::jsonb->>'holdout')::boolean, false), d.records)::kadenz_ctally_change
			FROM unnest(rows) r JOIN campaign_messages cm ON cm.message_id = r.message_id LEFT JOIN decisions d ON d.envelope_id = r.id));
	END
	$f$`,
	// Envelope rows inserted or deleted move their messages' counts in
	// campaign_messages, and a message whose count leaves or reaches zero
	// moves its campaign's 'm'.
	`CREATE OR REPLACE FUNCTION kadenz_ctally_message_counts(sign INT, rows kadenz_tally_env[]) RETURNS VOID
	LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $f$
	DECLARE
		s_shard INT := kadenz_tally_shard();
	BEGIN
		WITH d AS (SELECT r.message_id, count(*) AS k FROM unnest(rows) r GROUP BY 1 ORDER BY 1),
		u AS (
			UPDATE campaign_messages cm SET envelopes = cm.envelopes + sign * d.k FROM d WHERE cm.message_id = d.message_id
			RETURNING cm.campaign, cm.envelopes AS after, cm.envelopes - sign * d.k AS before)
		INSERT INTO campaign_tallies (campaign, kind, state, holdout, deferred, label, shard, n)
		SELECT u.campaign, 'm', '', false, false, '', s_shard,
			sum(CASE WHEN u.after > 0 AND u.before <= 0 THEN 1 WHEN u.after <= 0 AND u.before > 0 THEN -1 ELSE 0 END)
		FROM u GROUP BY 1
		HAVING sum(CASE WHEN u.after > 0 AND u.before <= 0 THEN 1 WHEN u.after <= 0 AND u.before > 0 THEN -1 ELSE 0 END) <> 0
		ORDER BY 1
		ON CONFLICT (campaign, kind, state, holdout, deferred, label, shard) DO UPDATE SET n = campaign_tallies.n + excluded.n;
	END
	$f$`,
	`CREATE OR REPLACE FUNCTION kadenz_ctally_envelopes_insert() RETURNS trigger LANGUAGE plpgsql AS $f$
	DECLARE
		rows kadenz_tally_env[];
	BEGIN
		IF current_setting('kadenz.accept_tallied', true) = 'on' THEN
			RETURN NULL; -- counted by the accept (queueAcceptCampaignTallies)
		END IF;
		rows := ARRAY(SELECT ROW(n.id, n.message_id, n.state, n.data)::kadenz_tally_env FROM new_rows n);
		PERFORM kadenz_ctally_envelopes(1, rows);
		PERFORM kadenz_ctally_message_counts(1, rows);
		RETURN NULL;
	END
	$f$`,
	`CREATE OR REPLACE FUNCTION kadenz_ctally_envelopes_delete() RETURNS trigger LANGUAGE plpgsql AS $f$
	DECLARE
		rows kadenz_tally_env[];
	BEGIN
		rows := ARRAY(SELECT ROW(o.id, o.message_id, o.state, o.data)::kadenz_tally_env FROM old_rows o);
		PERFORM kadenz_ctally_envelopes(-1, rows);
		PERFORM kadenz_ctally_message_counts(-1, rows);
		RETURN NULL;
	END
	$f$`,
	// One envelope updated (a claim, an outcome, a decision): only a move
	// of its state or holdout flag moves it, its campaign and records being
	// those of other tables. Scalar lookups (the campaign from
	// campaign_messages, no JSON of the message) and two upserts, planned
	// once per session; the reasons only when mail enters or leaves
	// suppressed.
	`CREATE OR REPLACE FUNCTION kadenz_ctally_envelopes_update() RETURNS trigger
	LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $f$
	DECLARE
		oh BOOLEAN := coalesce((convert_from(OLD.data, 'UTF8')::jsonb->>'holdout')::boolean, false);
		nh BOOLEAN := coalesce((convert_from(NEW.data, 'UTF8')::jsonb->>'holdout')::boolean, false);
		oc TEXT;
		nc TEXT;
		recs BYTEA;
		def BOOLEAN;
		act TEXT;
		rs TEXT[];
		sh INT;
	BEGIN
		IF OLD.state = NEW.state AND oh = nh AND OLD.message_id = NEW.message_id THEN
			RETURN NULL;
		END IF;
		SELECT cm.campaign INTO oc FROM campaign_messages cm WHERE cm.message_id = OLD.message_id;
		nc := oc;
		IF NEW.message_id <> OLD.message_id THEN
			SELECT cm.campaign INTO nc FROM campaign_messages cm WHERE cm.message_id = NEW.message_id;
		END IF;
		IF oc IS NULL AND nc IS NULL THEN
			RETURN NULL; -- mail without a campaign
		END IF;
		SELECT d.records INTO recs FROM decisions d WHERE d.envelope_id = NEW.id;
		def := kadenz_records_deferred(recs);
		sh := kadenz_tally_shard();
		IF oc IS NOT NULL THEN
			INSERT INTO campaign_tallies (campaign, kind, state, holdout, deferred, label, shard, n)
				VALUES (oc, 'e', OLD.state, oh, def, '', sh, -1)
				ON CONFLICT (campaign, kind, state, holdout, deferred, label, shard) DO UPDATE SET n = campaign_tallies.n + excluded.n;
		END IF;
		IF nc IS NOT NULL THEN
			INSERT INTO campaign_tallies (campaign, kind, state, holdout, deferred, label, shard, n)
				VALUES (nc, 'e', NEW.state, nh, def, '', sh, 1)
				ON CONFLICT (campaign, kind, state, holdout, deferred, label, shard) DO UPDATE SET n = campaign_tallies.n + excluded.n;
		END IF;
		IF (OLD.state = 'suppressed') <> (NEW.state = 'suppressed') OR (NEW.state = 'suppressed' AND oc IS DISTINCT FROM nc) THEN
			SELECT x.action, x.reasons INTO act, rs FROM kadenz_last_decision(recs) x;
			IF act IS NOT NULL AND cardinality(rs) > 0 THEN
				INSERT INTO campaign_tallies (campaign, kind, state, holdout, deferred, label, shard, n)
					SELECT v.campaign, 'r', '', false, false, coalesce(r, ''), sh, sum(v.sg)
					FROM unnest(rs) r CROSS JOIN (VALUES (oc, -1, OLD.state), (nc, 1, NEW.state)) v(campaign, sg, st)
					WHERE v.st = 'suppressed' AND v.campaign IS NOT NULL
					GROUP BY 1, 6 HAVING sum(v.sg) <> 0 ORDER BY 1, 6
					ON CONFLICT (campaign, kind, state, holdout, deferred, label, shard) DO UPDATE SET n = campaign_tallies.n + excluded.n;
			END IF;
		END IF;
		RETURN NULL;
	END
	$f$`,
	// Decision records written or deleted: their envelope moves from what
	// its old records counted to what its new ones count.
	`CREATE OR REPLACE FUNCTION kadenz_ctally_decisions(ch kadenz_tally_records[]) RETURNS VOID
	LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $f$
	BEGIN
		PERFORM kadenz_ctally_apply(ARRAY(
			WITH c AS (SELECT * FROM unnest(ch)),
			env AS MATERIALIZED (
				SELECT e.id, e.state, coalesce((convert_from(e.data, 'UTF8')::jsonb->>'holdout')::boolean, false) AS holdout, cm.campaign
				FROM envelopes e JOIN campaign_messages cm ON cm.message_id = e.message_id WHERE e.id IN (SELECT envelope_id FROM c))
			SELECT ROW(s.sign, e.campaign, e.state, e.holdout, CASE WHEN s.sign > 0 THEN c.records_after ELSE c.records_before END)::kadenz_ctally_change
			FROM c JOIN env e ON e.id = c.envelope_id CROSS JOIN (VALUES (1), (-1)) s(sign)
			WHERE e.campaign IS NOT NULL));
	END
	$f$`,
	`CREATE OR REPLACE FUNCTION kadenz_ctally_decisions_insert() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		PERFORM kadenz_ctally_decisions(ARRAY(SELECT ROW(n.envelope_id, NULL, n.records)::kadenz_tally_records FROM new_rows n));
		RETURN NULL;
	END
	$f$`,
	`CREATE OR REPLACE FUNCTION kadenz_ctally_decisions_update() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		PERFORM kadenz_ctally_decisions(ARRAY(SELECT ROW(n.envelope_id, o.records, n.records)::kadenz_tally_records
			FROM new_rows n JOIN old_rows o ON o.envelope_id = n.envelope_id));
		RETURN NULL;
	END
	$f$`,
	`CREATE OR REPLACE FUNCTION kadenz_ctally_decisions_delete() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		PERFORM kadenz_ctally_decisions(ARRAY(SELECT ROW(o.envelope_id, o.records, NULL)::kadenz_tally_records FROM old_rows o));
		RETURN NULL;
	END
	$f$`,
	// Messages inserted or deleted: listed in campaign_messages or taken
	// off it, and envelopes that exist already (an import out of order) or
	// still (an erasure) move in or out of the campaign. The rows reuse the
	// hourly tallies' type, with campaigns where it has classes.
	`CREATE OR REPLACE FUNCTION kadenz_ctally_messages(sign INT, msgs kadenz_tally_class[]) RETURNS VOID
	LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $f$
	BEGIN
		PERFORM kadenz_ctally_apply(ARRAY(
			SELECT ROW(sign, CASE WHEN sign > 0 THEN c.class_after ELSE c.class_before END, e.state,
				coalesce((convert_from(e.data, 'UTF8')::jsonb->>'holdout')::boolean, false), d.records)::kadenz_ctally_change
			FROM unnest(msgs) c JOIN envelopes e ON e.message_id = c.message_id LEFT JOIN decisions d ON d.envelope_id = e.id));
	END
	$f$`,
	`CREATE OR REPLACE FUNCTION kadenz_ctally_messages_insert() RETURNS trigger
	LANGUAGE plpgsql SET enable_seqscan = off AS $f$
	DECLARE
		s_shard INT := kadenz_tally_shard();
	BEGIN
		IF current_setting('kadenz.accept_tallied', true) = 'on' THEN
			RETURN NULL; -- listed and counted by the accept (queueAcceptCampaignTallies)
		END IF;
		WITH ins AS (
			INSERT INTO campaign_messages (message_id, campaign, subject, envelopes)
			SELECT n.id, c.campaign, c.subject, (SELECT count(*) FROM envelopes e WHERE e.message_id = n.id)
			FROM new_rows n CROSS JOIN LATERAL kadenz_campaign_of(n.data) c
			WHERE c.campaign IS NOT NULL ORDER BY 1
			RETURNING campaign, envelopes)
		INSERT INTO campaign_tallies (campaign, kind, state, holdout, deferred, label, shard, n)
		SELECT ins.campaign, 'm', '', false, false, '', s_shard, count(*) FROM ins WHERE ins.envelopes > 0 GROUP BY 1 ORDER BY 1
		ON CONFLICT (campaign, kind, state, holdout, deferred, label, shard) DO UPDATE SET n = campaign_tallies.n + excluded.n;
		PERFORM kadenz_ctally_messages(1, ARRAY(SELECT ROW(n.id, NULL, c.campaign)::kadenz_tally_class
			FROM new_rows n CROSS JOIN LATERAL kadenz_campaign_of(n.data) c WHERE c.campaign IS NOT NULL));
		RETURN NULL;
	END
	$f$`,
	`CREATE OR REPLACE FUNCTION kadenz_ctally_messages_delete() RETURNS trigger
	LANGUAGE plpgsql SET enable_seqscan = off AS $f$
	DECLARE
		s_shard INT := kadenz_tally_shard();
	BEGIN
		WITH del AS (
			DELETE FROM campaign_messages cm USING old_rows o WHERE cm.message_id = o.id
			RETURNING cm.campaign, cm.envelopes)
		INSERT INTO campaign_tallies (campaign, kind, state, holdout, deferred, label, shard, n)
		SELECT del.campaign, 'm', '', false, false, '', s_shard, -count(*) FROM del WHERE del.envelopes > 0 GROUP BY 1 ORDER BY 1
		ON CONFLICT (campaign, kind, state, holdout, deferred, label, shard) DO UPDATE SET n = campaign_tallies.n + excluded.n;
		PERFORM kadenz_ctally_messages(-1, ARRAY(SELECT ROW(o.id, c.campaign, NULL)::kadenz_tally_class
			FROM old_rows o CROSS JOIN LATERAL kadenz_campaign_of(o.data) c WHERE c.campaign IS NOT NULL));
		RETURN NULL;
	END
	$f$`,
}

var campaignsTriggers = countingTriggers("kadenz_ctally_")

// campaignsBackfill lists and counts what the database holds already.
var campaignsBackfill = []string{
	`INSERT INTO campaign_messages (message_id, campaign, subject, envelopes)
		SELECT m.id, c.campaign, c.subject, (SELECT count(*) FROM envelopes e WHERE e.message_id = m.id)
		FROM messages m CROSS JOIN LATERAL kadenz_campaign_of(m.data) c
		WHERE c.campaign IS NOT NULL ON CONFLICT DO NOTHING`,
	`INSERT INTO campaign_tallies (campaign, kind, state, holdout, deferred, label, shard, n)
		SELECT campaign, 'm', '', false, false, '', 0, count(*) FROM campaign_messages WHERE envelopes > 0 GROUP BY 1`,
	`WITH x AS MATERIALIZED (
			SELECT (kadenz_campaign_of(m.data)).campaign AS campaign, e.state,
				coalesce((convert_from(e.data, 'UTF8')::jsonb->>'holdout')::boolean, false) AS holdout, d.records
			FROM envelopes e JOIN messages m ON m.id = e.message_id LEFT JOIN decisions d ON d.envelope_id = e.id)
		INSERT INTO campaign_tallies (campaign, kind, state, holdout, deferred, label, shard, n)
		SELECT r.campaign, r.kind, r.state, r.holdout, r.deferred, r.label, 0, sum(r.sign)
		FROM (
			SELECT 1 AS sign, x.campaign, 'e' AS kind, x.state, x.holdout, kadenz_records_deferred(x.records) AS deferred, '' AS label FROM x
			UNION ALL
			SELECT 1, x.campaign, 'r', '', false, false, coalesce(reason, '')
			FROM x CROSS JOIN LATERAL kadenz_last_decision(x.records) ld
				CROSS JOIN LATERAL unnest(CASE WHEN ld.action IS NULL THEN '{}'::text[] ELSE ld.reasons END) reason
			WHERE x.state = 'suppressed') r
		WHERE r.campaign IS NOT NULL
		GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(r.sign) <> 0`,
}

// queueAcceptCampaignTallies counts a new message's envelopes in its
// campaign, as queueAcceptTallies counts them by hour: after its flag,
// which keeps the insert triggers off them.
func queueAcceptCampaignTallies(b *pgx.Batch, msg store.Message, envs []store.Envelope) {
	campaign, subject := store.CampaignOf(msg.Features)
	if campaign == "" {
		return
	}
	type key struct {
		state   string
		holdout bool
	}
	counts := map[key]int64{}
	for _, e := range envs {
		counts[key{string(e.State), e.Holdout}]++
	}
	var (
		states   []string
		holdouts []bool
		ns       []int64
	)
	kinds := []string{"m"} // the message, which has its envelopes
	states, holdouts, ns = append(states, ""), append(holdouts, false), append(ns, 1)
	for k, n := range counts {
		kinds, states, holdouts, ns = append(kinds, "e"), append(states, k.state), append(holdouts, k.holdout), append(ns, n)
	}
	b.Queue(`INSERT INTO campaign_tallies (campaign, kind, state, holdout, deferred, label, shard, n)
		SELECT $1, u.kind, u.state, u.holdout, false, '', kadenz_tally_shard(), u.n
		FROM unnest($2::text[], $3::text[], $4::boolean[], $5::bigint[]) AS u(kind, state, holdout, n)
		ORDER BY 2, 3, 4
		ON CONFLICT (campaign, kind, state, holdout, deferred, label, shard) DO UPDATE SET n = campaign_tallies.n + excluded.n`,
		campaign, kinds, states, holdouts, ns)
	// A message ID that exists already fails the accept at the messages
	// insert that follows, with its own error.
	b.Queue(`INSERT INTO campaign_messages (message_id, campaign, subject, envelopes) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
		msg.ID, campaign, subject, len(envs))
}

// readCampaign reads one campaign's kept tallies in tx.
func readCampaign(ctx context.Context, tx pgx.Tx, name string) (store.CampaignTally, bool, error) {
	t := store.CampaignTally{Campaign: name}
	rows, err := tx.Query(ctx, `SELECT kind, state, holdout, deferred, label, sum(n) FROM campaign_tallies
		WHERE campaign = $1 GROUP BY 1, 2, 3, 4, 5 HAVING sum(n) <> 0`, name)
	if err != nil {
		return t, false, err
	}
	for rows.Next() {
		var (
			kind, state, label string
			holdout, deferred  bool
			n                  int64
		)
		if err := rows.Scan(&kind, &state, &holdout, &deferred, &label, &n); err != nil {
			rows.Close()
			return t, false, err
		}
		switch kind {
		case "e":
			t.Envelopes = append(t.Envelopes, store.CampaignEnvelopeTally{State: store.State(state), Holdout: holdout, Deferred: deferred, N: int(n)})
		case "r":
			t.Reasons = append(t.Reasons, store.CampaignReasonTally{Reason: label, N: int(n)})
		case "m":
			t.Messages = int(n)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return t, false, err
	}
	if len(t.Envelopes) == 0 && len(t.Reasons) == 0 && t.Messages == 0 {
		return t, false, nil
	}
	err = tx.QueryRow(ctx, `SELECT subject FROM campaign_messages
		WHERE campaign = $1 AND subject <> '' AND envelopes > 0 ORDER BY message_id DESC LIMIT 1`, name).Scan(&t.Subject)
	if err != nil && err != pgx.ErrNoRows {
		return t, false, err
	}
	t.Sort()
	return t, true, nil
}

// CampaignTally reads one campaign's kept tallies.
func (s *Store) CampaignTally(name string) (store.CampaignTally, bool, error) {
	if name == "" {
		return store.CampaignTally{}, false, nil
	}
	if !s.keptTallies {
		all, err := store.WalkCampaignTallies(s)
		if err != nil || all[name] == nil {
			return store.CampaignTally{}, false, err
		}
		return *all[name], true, nil
	}
	var t store.CampaignTally
	var ok bool
	err := s.read(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		t, ok, err = readCampaign(ctx, tx, name)
		return err
	})
	if err != nil {
		return store.CampaignTally{}, false, fmt.Errorf("store: postgres: campaign tallies: %w", err)
	}
	return t, ok, nil
}

// CampaignTallies reads the kept tallies of up to limit campaigns named
// after after, by name, in one snapshot.
func (s *Store) CampaignTallies(after string, limit int) ([]store.CampaignTally, error) {
	if !s.keptTallies {
		all, err := store.WalkCampaignTallies(s)
		if err != nil {
			return nil, err
		}
		var out []store.CampaignTally
		for _, t := range all {
			if t.Campaign > after {
				out = append(out, *t)
			}
		}
		slices.SortFunc(out, func(a, b store.CampaignTally) int { return strings.Compare(a.Campaign, b.Campaign) })
		return out[:min(limit, len(out))], nil
	}
	var out []store.CampaignTally
	err := s.read(func(ctx context.Context, tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `SELECT DISTINCT campaign FROM (
				SELECT campaign FROM campaign_tallies WHERE campaign > $1
				GROUP BY campaign, kind, state, holdout, deferred, label HAVING sum(n) <> 0) x
			ORDER BY campaign LIMIT $2`, after, limit)
		if err != nil {
			return err
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, name := range names {
			t, ok, err := readCampaign(ctx, tx, name)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, t)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: postgres: campaign tallies: %w", err)
	}
	return out, nil
}

// CampaignEnvelopes is one page of a campaign's envelopes, read through
// campaign_messages and the envelopes' index by message in one snapshot:
// the campaign's messages, latest first, a page's worth at a time, then
// their envelopes.
func (s *Store) CampaignEnvelopes(name, before string, limit int) (store.CampaignPage, error) {
	if limit <= 0 {
		limit = int(^uint32(0) >> 1)
	}
	if !s.keptTallies {
		return s.walkCampaignEnvelopes(name, before, limit)
	}
	var p store.CampaignPage
	err := s.read(func(ctx context.Context, tx pgx.Tx) error {
		p = store.CampaignPage{}
		var ids []string
		// The message of before first, from the envelope after before on.
		upTo, inclusive := store.EnvelopeMessageID(before), before != ""
		for {
			if inclusive {
				ids, inclusive = []string{upTo}, false
			} else {
				rows, err := tx.Query(ctx, `SELECT message_id FROM campaign_messages
					WHERE campaign = $1 AND ($2 = '' OR message_id < $2) ORDER BY message_id DESC LIMIT $3`, name, upTo, min(limit+1, 1000))
				if err != nil {
					return err
				}
				if ids, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
					return err
				}
				if len(ids) == 0 {
					return nil
				}
			}
			done, err := s.campaignPageOf(ctx, tx, &p, name, ids, before, limit)
			if err != nil || done {
				return err
			}
			upTo, before = ids[len(ids)-1], "" // before bounds its own message's envelopes only
		}
	})
	if err != nil {
		return store.CampaignPage{}, fmt.Errorf("store: postgres: campaign envelopes: %w", err)
	}
	return p, nil
}

// campaignPageOf adds the envelopes of messages ids (in that order, each
// highest envelope ID first, below before if set) to p until it holds
// limit; done when the page is full.
func (s *Store) campaignPageOf(ctx context.Context, tx pgx.Tx, p *store.CampaignPage, name string, ids []string, before string, limit int) (done bool, err error) {
	rows, err := tx.Query(ctx, `SELECT e.id, e.data, m.data, d.records
		FROM unnest($1::text[]) WITH ORDINALITY u(message_id, ord)
			JOIN campaign_messages cm ON cm.message_id = u.message_id AND cm.campaign = $2
			JOIN envelopes e ON e.message_id = u.message_id
			JOIN messages m ON m.id = u.message_id
			LEFT JOIN decisions d ON d.envelope_id = e.id
		WHERE $3 = '' OR e.id < $3
		ORDER BY u.ord, e.id DESC LIMIT $4`, ids, name, before, limit+1-len(p.Records))
	if err != nil {
		return false, err
	}
	defer rows.Close()
	var m *store.Message
	for rows.Next() {
		var id string
		var ed, md, recs []byte
		if err := rows.Scan(&id, &ed, &md, &recs); err != nil {
			return false, err
		}
		if len(p.Records) == limit {
			p.Next = p.Records[len(p.Records)-1].Envelope.ID
			return true, nil
		}
		var rec store.EnvelopeRecord
		if err := json.Unmarshal(ed, &rec.Envelope); err != nil {
			return false, fmt.Errorf("envelope %s: %w", id, err)
		}
		if m == nil || m.ID != rec.Envelope.MessageID {
			var msg store.Message
			if err := json.Unmarshal(md, &msg); err != nil {
				return false, err
			}
			m = &msg
		}
		rec.Message = m
		rec.Decisions = recordsArray(recs)
		p.Records = append(p.Records, rec)
	}
	return false, rows.Err()
}

// walkCampaignEnvelopes pages a campaign's envelopes from a walk of all
// of them (CockroachDB, where no trigger keeps campaign_messages).
func (s *Store) walkCampaignEnvelopes(name, before string, limit int) (store.CampaignPage, error) {
	var all []store.EnvelopeRecord
	err := s.Records(func(r store.EnvelopeRecord) bool {
		if c, _ := store.CampaignOf(r.Message.Features); c == name {
			all = append(all, r)
		}
		return true
	})
	slices.SortFunc(all, func(a, b store.EnvelopeRecord) int {
		return cmp.Or(strings.Compare(b.Envelope.MessageID, a.Envelope.MessageID), strings.Compare(b.Envelope.ID, a.Envelope.ID))
	})
	var p store.CampaignPage
	bm := store.EnvelopeMessageID(before)
	for _, r := range all {
		if before != "" && !(r.Envelope.MessageID < bm || (r.Envelope.MessageID == bm && r.Envelope.ID < before)) {
			continue
		}
		if len(p.Records) == limit {
			p.Next = p.Records[len(p.Records)-1].Envelope.ID
			break
		}
		p.Records = append(p.Records, r)
	}
	return p, err
}
