package postgres

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"kadenz/store"
)

// Leases: a row per named lease. Acquiring is one upsert whose update only
// happens when the lease is free, expired or the caller's own, so two
// nodes acquiring at once cannot both win: the database orders the two
// writes to the row, and the second sees the first's owner.

var _ store.Leases = (*Store)(nil)

// AcquireLease takes or renews a lease (see store.Leases).
func (s *Store) AcquireLease(name, owner string, now time.Time, ttl time.Duration) (store.Lease, bool, error) {
	if strings.TrimSpace(name) == "" || strings.TrimSpace(owner) == "" {
		return store.Lease{}, false, errors.New("store: a lease needs a name and an owner")
	}
	if ttl <= 0 {
		return store.Lease{}, false, errors.New("store: a lease needs a positive duration")
	}
	var l store.Lease
	var held bool
	err := s.write(func(ctx context.Context, tx pgx.Tx) error {
		var cur string
		var exp int64
		err := tx.QueryRow(ctx, `INSERT INTO leases (name, owner, expires) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires
			WHERE leases.owner = excluded.owner OR leases.expires <= $4
			RETURNING owner, expires`, name, owner, nanos(now.Add(ttl)), nanos(now)).Scan(&cur, &exp)
		if errors.Is(err, pgx.ErrNoRows) { // held by another, not expired
			err = tx.QueryRow(ctx, `SELECT owner, expires FROM leases WHERE name = $1`, name).Scan(&cur, &exp)
		}
		if err != nil {
			return err
		}
		l = store.Lease{Name: name, Owner: cur, Expires: time.Unix(0, exp)}
		held = cur == owner
		return nil
	})
	return l, held, err
}

// ReleaseLease gives up owner's lease (see store.Leases).
func (s *Store) ReleaseLease(name, owner string) (bool, error) {
	var ok bool
	err := s.write(func(ctx context.Context, tx pgx.Tx) error {
		ct, err := tx.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND owner = $2`, name, owner)
		ok = ct.RowsAffected() > 0
		return err
	})
	return ok, err
}

// LeaseList lists the leases, by name.
func (s *Store) LeaseList() ([]store.Lease, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT name, owner, expires FROM leases ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Lease
	for rows.Next() {
		var l store.Lease
		var exp int64
		if err := rows.Scan(&l.Name, &l.Owner, &exp); err != nil {
			return nil, err
		}
		l.Expires = time.Unix(0, exp)
		out = append(out, l)
	}
	return out, rows.Err()
}
