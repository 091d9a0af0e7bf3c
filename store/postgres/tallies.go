package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"kadenz/store"
)

// How this store keeps the tallies of statistics and the overview
// (store/tallies.go): in the table tallies, moved by triggers on
// envelopes, decisions and messages, in the transaction of the write.
//
// A trigger is the one place that sees every write to those tables —
// accepts, decision rounds, delivery outcomes, erasures, purges, imports
// and any statement added later — together with the rows as they were and
// as they are (statement-level triggers with transition tables, so a
// decision round's UPDATE of 512 envelopes moves the tallies with one
// upsert per key, not one per envelope). What an envelope counts depends
// on its row, its message's class and its last decision record; each
// trigger takes away what the changed rows counted before the statement
// and adds what they count after it, reading the other two tables as they
// are, which the statement did not change. The store reads three fields of
// a decision record (store/tallies.go) and the envelope's created and
// holdout from its JSON, in SQL (kadenz_tally_rows).
//
// Hot rows: the envelopes of one campaign, accepted in one hour, all
// count in one key, and every SMTP session would add to its row. Under
// SERIALIZABLE two transactions updating one row cannot both commit, so
// each key is split over shards: a session adds to the shard it was given
// when it connected (kadenz.tally_shard, a number per connection of this
// process, from a random start so that nodes differ), and a read sums the
// shards. Two transactions on one pool never share a shard while the pool
// holds at most tallyShards connections.
//
// A database written before this layout (schema version 1) gets its
// tallies from one pass over its envelopes when it is migrated (the last
// statement of migration 2), as bbolt's schema 5 builds them at open.
//
// The triggers look rows up by key, a few per changed row. On a small
// table the planner would rather scan it whole, and under SERIALIZABLE a
// scan locks the whole table against every concurrent writer: two
// deciders retried 8-14 of 40 rounds each that way in a test where main
// retries 0-2. The trigger functions therefore run with enable_seqscan
// off (with it, 0-2 again); on a large table the plans are the same.
//
// CockroachDB has no transition tables: there the migration only creates
// the table, no trigger keeps it, and Tallies walks the envelopes as
// before (keptTallies false).

// What an accept counts is known before it is written: a new message (an
// existing ID fails the accept) with new envelopes, no records. Counting
// it in the triggers would read the messages and envelopes indexes, and
// under SERIALIZABLE a read of an index page that a concurrent accept
// inserts into is a conflict: in TestTalliesConcurrentAccepts, 8 sessions
// retried 160 of 200 accepts that way (none without the triggers). So an
// accept adds its own tallies, computed here, and tells the two insert
// triggers of its transaction to leave them (kadenz.accept_tallied); it
// then reads nothing, as before.
func queueAcceptTallies(b *pgx.Batch, msg store.Message, envs []store.Envelope) {
	type key struct {
		hour    int64
		kind    string
		state   string
		holdout bool
	}
	counts := map[key]int64{}
	first := 0
	for i, e := range envs {
		counts[key{tallyHour(e.Created), "e", string(e.State), e.Holdout}]++
		if e.ID < envs[first].ID {
			first = i
		}
	}
	counts[key{tallyHour(envs[first].Created), "m", "", false}]++
	var (
		hours, ns     []int64
		kinds, states []string
		holdouts      []bool
	)
	for k, n := range counts {
		hours, kinds, states, holdouts, ns = append(hours, k.hour), append(kinds, k.kind), append(states, k.state), append(holdouts, k.holdout), append(ns, n)
	}
	// One statement, first in the batch: the flag for the triggers of the
	// inserts that follow, and the tallies.
	b.Queue(`WITH flag AS (SELECT set_config('kadenz.accept_tallied', 'on', true))
		INSERT INTO tallies (hour, kind, state, class, holdout, label, shard, n)
		SELECT u.hour, u.kind, u.state, $6, u.holdout, '', kadenz_tally_shard(), u.n
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::boolean[], $5::bigint[]) AS u(hour, kind, state, holdout, n), flag
		ORDER BY 1, 2, 3, 4
		ON CONFLICT (hour, kind, state, class, holdout, label, shard) DO UPDATE SET n = tallies.n + excluded.n`,
		hours, kinds, states, holdouts, ns, msg.Class)
}

// tallyHour numbers t's hour as the tallies do (store.TallyHours).
func tallyHour(t time.Time) int64 {
	from, _ := store.TallyHours(t, t)
	return hourNumber(from)
}

// tallyShards is how many rows a tally key is spread over.
const tallyShards = 32

// nextTallyShard numbers this process's connections.
var nextTallyShard atomic.Uint32

func init() { nextTallyShard.Store(rand.Uint32N(tallyShards)) }

// setTallyShard gives a new connection its shard.
func setTallyShard(ctx context.Context, c *pgx.Conn) error {
	shard := (nextTallyShard.Add(1) - 1) % tallyShards
	_, err := c.Exec(ctx, `SELECT set_config('kadenz.tally_shard', $1, false)`, fmt.Sprint(shard))
	return err
}

// talliesMigration is schema version 2: the table (talliesTable, also on
// CockroachDB), then the types, functions, triggers and the first tallies.
// Function bodies are dollar-quoted; the statements run one by one.
//
// Where the work is done: a query that names a trigger's transition
// tables is planned again at every firing, and a SQL-language function at
// every call. So each trigger only copies its rows into arrays (a query
// cheap to plan) and hands them to a PL/pgSQL function, whose plans over
// unnest(array) are planned once per session and kept.
func talliesMigration() []string {
	return slices.Concat(talliesTypes, talliesFunctions, talliesTriggers, []string{talliesBackfill})
}

const talliesTable = `CREATE TABLE IF NOT EXISTS tallies (
		hour BIGINT NOT NULL,
		kind TEXT NOT NULL,
		state TEXT NOT NULL,
		class TEXT NOT NULL,
		holdout BOOLEAN NOT NULL,
		label TEXT NOT NULL,
		shard INT NOT NULL,
		n BIGINT NOT NULL,
		PRIMARY KEY (hour, kind, state, class, holdout, label, shard))`

var talliesTypes = []string{
	// An envelope row as a trigger saw it.
	`CREATE TYPE kadenz_tally_env AS (id TEXT, message_id TEXT, state TEXT, data BYTEA)`,
	// A decisions row before and after a statement (NULL: none).
	`CREATE TYPE kadenz_tally_records AS (envelope_id TEXT, records_before BYTEA, records_after BYTEA)`,
	// A message row's class before and after (NULL: no row).
	`CREATE TYPE kadenz_tally_class AS (message_id TEXT, class_before TEXT, class_after TEXT)`,
	// One contribution, with its sign: kind 'e' an envelope (data: its
	// JSON; action and reasons: its last decision record's, action NULL
	// when it has none or it is unreadable), kind 'm' a message counted
	// in the hour of its first envelope (data).
	`CREATE TYPE kadenz_tally_change AS (sign INT, kind TEXT, state TEXT, data BYTEA, class TEXT, action TEXT, reasons TEXT[])`,
}

var talliesFunctions = []string{
	// kadenz_last_decision reads the last record's action (its would when
	// set) and reasons as store.lastDecision does; action is NULL when the
	// list is empty or unreadable (then nothing of the records counts).
	`CREATE OR REPLACE FUNCTION kadenz_last_decision(records BYTEA, OUT action TEXT, OUT reasons TEXT[])
	LANGUAGE plpgsql IMMUTABLE AS $f$
	DECLARE
		r JSONB;
	BEGIN
		IF records IS NULL OR length(records) = 0 THEN
			RETURN;
		END IF;
		BEGIN
			r := (('[' || convert_from(records, 'UTF8') || ']')::jsonb) -> -1;
		EXCEPTION WHEN others THEN
			RETURN;
		END;
		IF r IS NULL THEN
			RETURN;
		END IF;
		IF jsonb_typeof(r) = 'null' THEN -- Go decodes null into a zero record
			action := '';
			reasons := '{}';
			RETURN;
		END IF;
		IF jsonb_typeof(r) <> 'object'
			OR coalesce(jsonb_typeof(r->'action'), 'null') NOT IN ('string', 'null')
			OR coalesce(jsonb_typeof(r->'would'), 'null') NOT IN ('string', 'null')
			OR coalesce(jsonb_typeof(r->'reasons'), 'null') NOT IN ('array', 'null') THEN
			RETURN;
		END IF;
		IF jsonb_typeof(r->'reasons') = 'array' AND EXISTS (
			SELECT 1 FROM jsonb_array_elements(r->'reasons') x WHERE jsonb_typeof(x) NOT IN ('string', 'null')) THEN
			RETURN;
		END IF;
		action := coalesce(nullif(r->>'would', ''), r->>'action', '');
		reasons := ARRAY(SELECT coalesce(x, '') FROM jsonb_array_elements_text(
			CASE WHEN jsonb_typeof(r->'reasons') = 'array' THEN r->'reasons' ELSE '[]'::jsonb END) x);
	END
	$f$`,
	// kadenz_tally_rows is what one contribution adds to the tallies
	// (store's hourOf: the hour of created, floored; the fraction of a
	// second is dropped before the cast, which would round it).
	`CREATE OR REPLACE FUNCTION kadenz_tally_rows(c kadenz_tally_change,
		OUT t_hour BIGINT, OUT t_kind TEXT, OUT t_state TEXT, OUT t_class TEXT, OUT t_holdout BOOLEAN, OUT t_label TEXT, OUT t_n INT)
	RETURNS SETOF record LANGUAGE plpgsql STABLE AS $f$
	DECLARE
		env JSONB := convert_from(c.data, 'UTF8')::jsonb;
		h BIGINT := floor(extract(epoch FROM regexp_replace(env->>'created', '\.[0-9]+', '')::timestamptz) / 3600);
		reason TEXT;
	BEGIN
		IF c.kind = 'm' THEN
			t_hour := h; t_kind := 'm'; t_state := ''; t_class := coalesce(c.class, ''); t_holdout := false; t_label := ''; t_n := c.sign;
			RETURN NEXT;
			RETURN;
		END IF;
		t_hour := h; t_kind := 'e'; t_state := c.state; t_class := coalesce(c.class, '');
		t_holdout := coalesce((env->>'holdout')::boolean, false); t_label := coalesce(c.action, ''); t_n := c.sign;
		RETURN NEXT;
		IF c.action IS NOT NULL THEN
			t_kind := 'r'; t_class := ''; t_holdout := false;
			FOREACH reason IN ARRAY coalesce(c.reasons, '{}') LOOP
				t_label := reason;
				RETURN NEXT;
			END LOOP;
		END IF;
	END
	$f$`,
	`CREATE OR REPLACE FUNCTION kadenz_tally_shard() RETURNS INT LANGUAGE sql STABLE AS $f$
		SELECT coalesce(nullif(current_setting('kadenz.tally_shard', true), '')::int, pg_backend_pid() % 32)
	$f$`,
	// kadenz_tally_apply adds contributions to the session's shard, one
	// upsert per key; pairs that cancel (a row whose counted fields did
	// not move) write nothing.
	`CREATE OR REPLACE FUNCTION kadenz_tally_apply(changes kadenz_tally_change[]) RETURNS VOID
	LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $f$
	DECLARE
		s_shard INT := kadenz_tally_shard();
	BEGIN
		IF coalesce(cardinality(changes), 0) = 0 THEN
			RETURN;
		END IF;
		INSERT INTO tallies (hour, kind, state, class, holdout, label, shard, n)
		SELECT r.t_hour, r.t_kind, r.t_state, r.t_class, r.t_holdout, r.t_label, s_shard, sum(r.t_n)
		FROM unnest(changes) c CROSS JOIN LATERAL kadenz_tally_rows(c) r
		GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(r.t_n) <> 0
		ORDER BY 1, 2, 3, 4, 5, 6
		ON CONFLICT (hour, kind, state, class, holdout, label, shard) DO UPDATE SET n = tallies.n + excluded.n;
	END
	$f$`,
	// kadenz_tally_envelopes: envelope rows changed from before to after
	// (an insert has no before, a delete no after). Each takes away what
	// it counted and adds what it counts, with its message's class and its
	// records as they are (the statement changed neither). A message whose
	// envelopes came or went, or whose first envelope's created moved,
	// moves from its first envelope before the statement to its first one
	// after (none: it does not count).
	`CREATE OR REPLACE FUNCTION kadenz_tally_envelopes(before kadenz_tally_env[], after kadenz_tally_env[]) RETURNS VOID
	LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $f$
	DECLARE
		moved TEXT[];
		o kadenz_tally_env;
		n kadenz_tally_env;
		oj JSONB;
		nj JSONB;
		cls TEXT;
		act TEXT;
		rs TEXT[];
	BEGIN
		-- One envelope updated (a claim, an outcome, an operator's move):
		-- scalar lookups, planned once, instead of the query below.
		IF cardinality(before) = 1 AND cardinality(after) = 1 THEN
			o := before[1];
			n := after[1];
			oj := convert_from(o.data, 'UTF8')::jsonb;
			nj := convert_from(n.data, 'UTF8')::jsonb;
			IF o.id = n.id AND o.message_id = n.message_id AND oj->'created' IS NOT DISTINCT FROM nj->'created' THEN
				IF o.state = n.state AND oj->'holdout' IS NOT DISTINCT FROM nj->'holdout' THEN
					RETURN; -- nothing counted moved
				END IF;
				SELECT convert_from(m.data, 'UTF8')::jsonb->>'class' INTO cls FROM messages m WHERE m.id = n.message_id;
				SELECT x.action, x.reasons INTO act, rs FROM decisions d CROSS JOIN LATERAL kadenz_last_decision(d.records) x
					WHERE d.envelope_id = n.id;
				PERFORM kadenz_tally_apply(ARRAY[
					ROW(-1, 'e', o.state, o.data, cls, act, rs)::kadenz_tally_change,
					ROW(1, 'e', n.state, n.data, cls, act, rs)::kadenz_tally_change]);
				RETURN;
			END IF;
		END IF;
		IF before IS NOT NULL AND after IS NOT NULL THEN -- an update: which messages may move
			moved := ARRAY(
				SELECT DISTINCT a.message_id FROM unnest(after) a JOIN unnest(before) b ON b.id = a.id
				WHERE convert_from(a.data, 'UTF8')::jsonb->'created' IS DISTINCT FROM convert_from(b.data, 'UTF8')::jsonb->'created');
		ELSE
			moved := ARRAY(SELECT DISTINCT x.message_id FROM unnest(coalesce(after, before)) x);
		END IF;
		PERFORM kadenz_tally_apply(ARRAY(
			WITH rows AS (
				SELECT 1 AS sign, a.* FROM unnest(coalesce(after, '{}')) a
				UNION ALL
				SELECT -1, b.* FROM unnest(coalesce(before, '{}')) b),
			cls AS MATERIALIZED (
				SELECT m.id, convert_from(m.data, 'UTF8')::jsonb->>'class' AS class FROM messages m
				WHERE m.id IN (SELECT message_id FROM rows)),
			dec AS MATERIALIZED (
				SELECT d.envelope_id, ld.action, ld.reasons FROM decisions d CROSS JOIN LATERAL kadenz_last_decision(d.records) ld
				WHERE d.envelope_id IN (SELECT id FROM rows))
			SELECT ROW(r.sign, 'e', r.state, r.data, c.class, dec.action, dec.reasons)::kadenz_tally_change
			FROM rows r LEFT JOIN cls c ON c.id = r.message_id LEFT JOIN dec ON dec.envelope_id = r.id
			UNION ALL
			SELECT ROW(1, 'm', '', f.data, c.class, NULL, NULL)::kadenz_tally_change
			FROM unnest(moved) ms(message_id)
				CROSS JOIN LATERAL (SELECT e.data FROM envelopes e WHERE e.message_id = ms.message_id ORDER BY e.id LIMIT 1) f
				LEFT JOIN cls c ON c.id = ms.message_id
			UNION ALL
			SELECT ROW(-1, 'm', '', f.data, c.class, NULL, NULL)::kadenz_tally_change
			FROM unnest(moved) ms(message_id)
				CROSS JOIN LATERAL (SELECT u.data FROM (
					(SELECT e.id, e.data FROM envelopes e WHERE e.message_id = ms.message_id
						AND e.id <> ALL (ARRAY(SELECT a.id FROM unnest(coalesce(after, '{}')) a)) ORDER BY e.id LIMIT 1)
					UNION ALL
					(SELECT b.id, b.data FROM unnest(coalesce(before, '{}')) b WHERE b.message_id = ms.message_id ORDER BY b.id LIMIT 1)) u
					ORDER BY u.id LIMIT 1) f
				LEFT JOIN cls c ON c.id = ms.message_id));
	END
	$f$`,
	// kadenz_tally_decisions: decision records written or deleted; their
	// envelope moves from what its old last record counted to what its new
	// one counts (an envelope that is gone counts nothing either way).
	`CREATE OR REPLACE FUNCTION kadenz_tally_decisions(ch kadenz_tally_records[]) RETURNS VOID
	LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $f$
	BEGIN
		PERFORM kadenz_tally_apply(ARRAY(
			WITH c AS (SELECT * FROM unnest(ch)),
			env AS MATERIALIZED (SELECT e.id, e.message_id, e.state, e.data FROM envelopes e WHERE e.id IN (SELECT envelope_id FROM c)),
			cls AS MATERIALIZED (
				SELECT m.id, convert_from(m.data, 'UTF8')::jsonb->>'class' AS class FROM messages m
				WHERE m.id IN (SELECT message_id FROM env)),
			pairs AS (
				SELECT e.state, e.data, cls.class, lb.action AS action_before, lb.reasons AS reasons_before,
					la.action AS action_after, la.reasons AS reasons_after
				FROM c JOIN env e ON e.id = c.envelope_id LEFT JOIN cls ON cls.id = e.message_id
					CROSS JOIN LATERAL kadenz_last_decision(c.records_before) lb
					CROSS JOIN LATERAL kadenz_last_decision(c.records_after) la
				WHERE lb.action IS DISTINCT FROM la.action OR lb.reasons IS DISTINCT FROM la.reasons)
			SELECT ROW(-1, 'e', p.state, p.data, p.class, p.action_before, p.reasons_before)::kadenz_tally_change FROM pairs p
			UNION ALL
			SELECT ROW(1, 'e', p.state, p.data, p.class, p.action_after, p.reasons_after)::kadenz_tally_change FROM pairs p));
	END
	$f$`,
	// kadenz_tally_messages: messages inserted or deleted while they have
	// envelopes (an import out of order, an erasure): their envelopes and
	// count move between the class and none.
	`CREATE OR REPLACE FUNCTION kadenz_tally_messages(ch kadenz_tally_class[]) RETURNS VOID
	LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $f$
	BEGIN
		PERFORM kadenz_tally_apply(ARRAY(
			WITH c AS MATERIALIZED (SELECT * FROM unnest(ch) x WHERE EXISTS (SELECT 1 FROM envelopes e WHERE e.message_id = x.message_id))
			SELECT ROW(s.sign, 'e', e.state, e.data, CASE WHEN s.sign > 0 THEN c.class_after ELSE c.class_before END, ld.action, ld.reasons)::kadenz_tally_change
			FROM c JOIN envelopes e ON e.message_id = c.message_id LEFT JOIN decisions d ON d.envelope_id = e.id
				LEFT JOIN LATERAL kadenz_last_decision(d.records) ld ON true
				CROSS JOIN (VALUES (1), (-1)) s(sign)
			UNION ALL
			SELECT ROW(s.sign, 'm', '', f.data, CASE WHEN s.sign > 0 THEN c.class_after ELSE c.class_before END, NULL, NULL)::kadenz_tally_change
			FROM c CROSS JOIN LATERAL (SELECT e.data FROM envelopes e WHERE e.message_id = c.message_id ORDER BY e.id LIMIT 1) f
				CROSS JOIN (VALUES (1), (-1)) s(sign)));
	END
	$f$`,
	// The trigger functions only copy their transition tables into arrays.
	`CREATE OR REPLACE FUNCTION kadenz_tally_envelopes_insert() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		IF current_setting('kadenz.accept_tallied', true) = 'on' THEN
			RETURN NULL; -- counted by the accept (queueAcceptTallies)
		END IF;
		PERFORM kadenz_tally_envelopes(NULL, ARRAY(SELECT ROW(n.id, n.message_id, n.state, n.data)::kadenz_tally_env FROM new_rows n));
		RETURN NULL;
	END
	$f$`,
	// An envelope updated: a row trigger, fired only when its state or its
	// JSON changed (not for a rewrite of the same row). Most updates are
	// one envelope (a claim, an outcome) and move only its state; they take
	// scalar lookups and two upserts, all planned once per session. One
	// that moves created or the message takes the general function (nothing
	// does today; it is exact unless one statement moves created for two
	// envelopes of one message).
	`CREATE OR REPLACE FUNCTION kadenz_tally_envelopes_update() RETURNS trigger
	LANGUAGE plpgsql SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $f$
	DECLARE
		oj JSONB := convert_from(OLD.data, 'UTF8')::jsonb;
		nj JSONB := convert_from(NEW.data, 'UTF8')::jsonb;
		h BIGINT;
		cls TEXT;
		act TEXT;
		rs TEXT[];
		sh INT;
	BEGIN
		IF OLD.id <> NEW.id OR OLD.message_id <> NEW.message_id OR oj->'created' IS DISTINCT FROM nj->'created' THEN
			PERFORM kadenz_tally_envelopes(ARRAY[ROW(OLD.id, OLD.message_id, OLD.state, OLD.data)::kadenz_tally_env],
				ARRAY[ROW(NEW.id, NEW.message_id, NEW.state, NEW.data)::kadenz_tally_env]);
			RETURN NULL;
		END IF;
		IF OLD.state = NEW.state AND oj->'holdout' IS NOT DISTINCT FROM nj->'holdout' THEN
			RETURN NULL; -- nothing counted moved
		END IF;
		h := floor(extract(epoch FROM regexp_replace(nj->>'created', '\.[0-9]+', '')::timestamptz) / 3600);
		SELECT convert_from(m.data, 'UTF8')::jsonb->>'class' INTO cls FROM messages m WHERE m.id = NEW.message_id;
		SELECT x.action, x.reasons INTO act, rs FROM decisions d CROSS JOIN LATERAL kadenz_last_decision(d.records) x
			WHERE d.envelope_id = NEW.id;
		sh := kadenz_tally_shard();
		INSERT INTO tallies (hour, kind, state, class, holdout, label, shard, n)
			VALUES (h, 'e', OLD.state, coalesce(cls, ''), coalesce((oj->>'holdout')::boolean, false), coalesce(act, ''), sh, -1)
			ON CONFLICT (hour, kind, state, class, holdout, label, shard) DO UPDATE SET n = tallies.n + excluded.n;
		INSERT INTO tallies (hour, kind, state, class, holdout, label, shard, n)
			VALUES (h, 'e', NEW.state, coalesce(cls, ''), coalesce((nj->>'holdout')::boolean, false), coalesce(act, ''), sh, 1)
			ON CONFLICT (hour, kind, state, class, holdout, label, shard) DO UPDATE SET n = tallies.n + excluded.n;
		IF act IS NOT NULL AND OLD.state <> NEW.state AND cardinality(rs) > 0 THEN
			INSERT INTO tallies (hour, kind, state, class, holdout, label, shard, n)
				SELECT h, 'r', v.st, '', false, r, sh, sum(v.sg) FROM unnest(rs) r CROSS JOIN (VALUES (OLD.state, -1), (NEW.state, 1)) v(st, sg)
				GROUP BY v.st, r ORDER BY v.st, r
				ON CONFLICT (hour, kind, state, class, holdout, label, shard) DO UPDATE SET n = tallies.n + excluded.n;
		END IF;
		RETURN NULL;
	END
	$f$`,
	`CREATE OR REPLACE FUNCTION kadenz_tally_envelopes_delete() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		PERFORM kadenz_tally_envelopes(ARRAY(SELECT ROW(o.id, o.message_id, o.state, o.data)::kadenz_tally_env FROM old_rows o), NULL);
		RETURN NULL;
	END
	$f$`,
	`CREATE OR REPLACE FUNCTION kadenz_tally_decisions_insert() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		PERFORM kadenz_tally_decisions(ARRAY(SELECT ROW(n.envelope_id, NULL, n.records)::kadenz_tally_records FROM new_rows n));
		RETURN NULL;
	END
	$f$`,
	`CREATE OR REPLACE FUNCTION kadenz_tally_decisions_update() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		PERFORM kadenz_tally_decisions(ARRAY(SELECT ROW(n.envelope_id, o.records, n.records)::kadenz_tally_records
			FROM new_rows n JOIN old_rows o ON o.envelope_id = n.envelope_id));
		RETURN NULL;
	END
	$f$`,
	`CREATE OR REPLACE FUNCTION kadenz_tally_decisions_delete() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		PERFORM kadenz_tally_decisions(ARRAY(SELECT ROW(o.envelope_id, o.records, NULL)::kadenz_tally_records FROM old_rows o));
		RETURN NULL;
	END
	$f$`,
	`CREATE OR REPLACE FUNCTION kadenz_tally_messages_insert() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		IF current_setting('kadenz.accept_tallied', true) = 'on' THEN
			RETURN NULL;
		END IF;
		PERFORM kadenz_tally_messages(ARRAY(
			SELECT ROW(n.id, NULL, convert_from(n.data, 'UTF8')::jsonb->>'class')::kadenz_tally_class FROM new_rows n));
		RETURN NULL;
	END
	$f$`,
	`CREATE OR REPLACE FUNCTION kadenz_tally_messages_delete() RETURNS trigger LANGUAGE plpgsql AS $f$
	BEGIN
		PERFORM kadenz_tally_messages(ARRAY(
			SELECT ROW(o.id, convert_from(o.data, 'UTF8')::jsonb->>'class', NULL)::kadenz_tally_class FROM old_rows o));
		RETURN NULL;
	END
	$f$`,
}

var talliesTriggers = countingTriggers("kadenz_tally_")

// countingTriggers are the eight triggers that keep a set of counts (the
// hourly tallies, the campaign tallies) in step with the envelopes,
// decisions and messages tables; each calls the function of its own name,
// which the set defines: prefix + "envelopes_insert" and so on.
func countingTriggers(p string) []string {
	return []string{
		`CREATE TRIGGER ` + p + `envelopes_insert AFTER INSERT ON envelopes
			REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ` + p + `envelopes_insert()`,
		`CREATE TRIGGER ` + p + `envelopes_delete AFTER DELETE ON envelopes
			REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ` + p + `envelopes_delete()`,
		`CREATE TRIGGER ` + p + `envelopes_update AFTER UPDATE ON envelopes
			FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.data IS DISTINCT FROM NEW.data)
			EXECUTE FUNCTION ` + p + `envelopes_update()`,
		`CREATE TRIGGER ` + p + `decisions_insert AFTER INSERT ON decisions
			REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ` + p + `decisions_insert()`,
		`CREATE TRIGGER ` + p + `decisions_update AFTER UPDATE ON decisions
			REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ` + p + `decisions_update()`,
		`CREATE TRIGGER ` + p + `decisions_delete AFTER DELETE ON decisions
			REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ` + p + `decisions_delete()`,
		`CREATE TRIGGER ` + p + `messages_insert AFTER INSERT ON messages
			REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ` + p + `messages_insert()`,
		`CREATE TRIGGER ` + p + `messages_delete AFTER DELETE ON messages
			REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ` + p + `messages_delete()`,
	}
}

// talliesBackfill counts what the database holds already, in one pass.
const talliesBackfill = `INSERT INTO tallies (hour, kind, state, class, holdout, label, shard, n)
	SELECT r.t_hour, r.t_kind, r.t_state, r.t_class, r.t_holdout, r.t_label, 0, sum(r.t_n)
	FROM (
		SELECT ROW(1, 'e', e.state, e.data, c.class, ld.action, ld.reasons)::kadenz_tally_change AS ch
		FROM envelopes e
			LEFT JOIN (SELECT id, convert_from(data, 'UTF8')::jsonb->>'class' AS class FROM messages) c ON c.id = e.message_id
			LEFT JOIN decisions d ON d.envelope_id = e.id
			LEFT JOIN LATERAL kadenz_last_decision(d.records) ld ON true
		UNION ALL
		SELECT ROW(1, 'm', '', f.data, c.class, NULL, NULL)::kadenz_tally_change
		FROM (SELECT DISTINCT ON (message_id) message_id, data FROM envelopes ORDER BY message_id, id) f
			LEFT JOIN (SELECT id, convert_from(data, 'UTF8')::jsonb->>'class' AS class FROM messages) c ON c.id = f.message_id
	) x CROSS JOIN LATERAL kadenz_tally_rows(x.ch) r
	GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(r.t_n) <> 0`

// talliesKept reports whether triggers keep the tallies in this database.
func (s *Store) talliesKept(ctx context.Context) (bool, error) {
	var kept bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_trigger
		WHERE tgrelid = to_regclass('envelopes') AND tgname = 'kadenz_tally_envelopes_update')`).Scan(&kept)
	return kept, err
}

// Tallies sums the kept tallies of the hours covering [since, until) over
// their shards: a read of those hours' rows, however many envelopes they
// count. Without the triggers (CockroachDB) it walks the envelopes.
func (s *Store) Tallies(since, until time.Time) (store.Tallies, error) {
	if !s.keptTallies {
		return store.WalkTallies(s, since, until)
	}
	from, to := store.TallyHours(since, until)
	var t store.Tallies
	err := s.read(func(ctx context.Context, tx pgx.Tx) error {
		t = store.Tallies{}
		rows, err := tx.Query(ctx, `SELECT hour, kind, state, class, holdout, label, sum(n) FROM tallies
			WHERE hour >= $1 AND hour < $2 GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(n) <> 0`, hourNumber(from), hourNumber(to))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				hour                      int64
				kind, state, class, label string
				holdout                   bool
				n                         int64
			)
			if err := rows.Scan(&hour, &kind, &state, &class, &holdout, &label, &n); err != nil {
				return err
			}
			at := time.Unix(hour*3600, 0).UTC()
			switch kind {
			case "e":
				t.Envelopes = append(t.Envelopes, store.EnvelopeTally{Hour: at, State: store.State(state), Class: class, Holdout: holdout, Action: label, N: int(n)})
			case "r":
				t.Reasons = append(t.Reasons, store.ReasonTally{Hour: at, State: store.State(state), Reason: label, N: int(n)})
			case "m":
				t.Messages = append(t.Messages, store.MessageTally{Hour: at, Class: class, N: int(n)})
			}
		}
		return rows.Err()
	})
	if err != nil {
		return store.Tallies{}, fmt.Errorf("store: postgres: tallies: %w", err)
	}
	t.Sort()
	return t, nil
}

// hourNumber is a whole hour's number since the epoch (from TallyHours).
func hourNumber(t time.Time) int64 { return t.Unix() / 3600 }

// TalliesKept reports whether triggers keep this database's tallies
// (false on CockroachDB, where Tallies walks the envelopes).
func (s *Store) TalliesKept() bool { return s.keptTallies }
