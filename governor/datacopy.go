package governor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"kadenz/store"
	"kadenz/store/postgres"
)

// Moving a data directory's bbolt database into an empty database for the
// postgres backend (kadenz db copy): the copy, then a comparison of what
// was read with what the database holds, table by table and envelopes by
// state.

// ErrCopyMismatch says the copy's counts differ from the source's.
var ErrCopyMismatch = errors.New("the copy does not match the source (see MISMATCH above)")

// CopyToPostgres copies the bbolt file at srcPath, which no running relay
// may have open, into the empty database at url (password apart from the
// URL; envelopes in delivery claimed under node, "" for the host name),
// prints the counts of both to out, and fails with ErrCopyMismatch if they
// differ.
func CopyToPostgres(srcPath, url, password, node string, out io.Writer) (time.Duration, error) {
	opts := postgres.Options{Password: password, Node: node}
	if err := checkEventJournal(srcPath); err != nil {
		return 0, err
	}
	src, err := store.Open(srcPath, store.Options{})
	if err != nil {
		return 0, err
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	dst, err := postgres.Open(ctx, url, opts)
	cancel()
	if err != nil {
		return 0, err
	}
	defer dst.Close()
	im, err := dst.NewImporter()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := src.Export(im); err != nil {
		return 0, fmt.Errorf("%w (the destination holds a partial copy: drop its tables or use a new database before trying again)", err)
	}
	if err := im.Flush(); err != nil {
		return 0, fmt.Errorf("%w (the destination holds a partial copy: drop its tables or use a new database before trying again)", err)
	}
	took := time.Since(start)
	return took, verifyCopy(src, dst, im.Counts, out)
}

// verifyCopy prints what was read and what the database holds, per table
// and per envelope state, and fails unless they all agree.
func verifyCopy(src *store.DB, dst *postgres.Store, read map[string]int64, stdout io.Writer) error {
	have, err := dst.TableCounts()
	if err != nil {
		return fmt.Errorf("counting the copy: %w", err)
	}
	srcStates, err := src.CountByState()
	if err != nil {
		return fmt.Errorf("counting the source: %w", err)
	}
	dstStates, err := dst.CountByState()
	if err != nil {
		return fmt.Errorf("counting the copy: %w", err)
	}
	ok := true
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "what\tbbolt\tpostgres\t")
	row := func(what string, a, b int64) {
		mark := ""
		if a != b {
			mark, ok = "MISMATCH", false
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\n", what, a, b, mark)
	}
	for _, t := range postgres.Tables {
		if t == "leases" {
			continue // not copied: each node takes its own
		}
		row(t, read[t], have[t])
	}
	states := map[store.State]bool{}
	for s := range srcStates {
		states[s] = true
	}
	for s := range dstStates {
		states[s] = true
	}
	for _, s := range slices.Sorted(func(yield func(store.State) bool) {
		for s := range states {
			if !yield(s) {
				return
			}
		}
	}) {
		row("envelopes "+string(s), int64(srcStates[s]), int64(dstStates[s]))
	}
	w.Flush()
	if !ok {
		return ErrCopyMismatch
	}
	return nil
}
