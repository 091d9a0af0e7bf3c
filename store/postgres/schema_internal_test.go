package postgres

import (
	"strings"
	"testing"
)

// On a database whose strings are byte-ordered by default (CockroachDB,
// which refuses COLLATE "C" on a column) the migrations drop the clause;
// elsewhere they keep it, and every ordered key column has it.
func TestDDLForByteOrderedDatabases(t *testing.T) {
	collated := 0
	for _, m := range migrations {
		for _, q := range m.sql {
			collated += strings.Count(q, `COLLATE "C"`)
			if got := ddlFor(q, false); got != q {
				t.Errorf("PostgreSQL's DDL changed: %s", got)
			}
			if got := ddlFor(q, true); strings.Contains(got, "COLLATE") {
				t.Errorf("CockroachDB's DDL keeps a collation: %s", got)
			}
		}
	}
	// messages (id, header_id), bodies, envelopes (id, message_id, rcpt),
	// decisions, profiles; campaign_tallies (campaign), campaign_messages
	// (campaign, message_id).
	if collated != 11 {
		t.Errorf("%d key columns ordered by bytes, want 11", collated)
	}
}
