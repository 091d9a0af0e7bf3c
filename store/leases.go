package store

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
)

// Leases let one node at a time do a singleton's work (a feedback
// mailbox, a cron chore, retention) when several nodes share a database:
// the holder renews its lease well before it expires; if it dies, another
// node acquires the lease once it has expired. Times are the caller's
// clock (the relay's, which may be virtual): the nodes' clocks must agree
// to well within a lease's length, as NTP keeps them.
type Leases interface {
	// AcquireLease takes the lease called name for owner until now+ttl if
	// it is free, expired, or owner's already (a renewal). It returns the
	// lease as it stands after the call and whether owner holds it.
	AcquireLease(name, owner string, now time.Time, ttl time.Duration) (Lease, bool, error)
	// ReleaseLease gives owner's lease up at once (at shutdown, so another
	// node need not wait for it to expire); false if owner did not hold it.
	ReleaseLease(name, owner string) (bool, error)
	// LeaseList lists the leases, by name.
	LeaseList() ([]Lease, error)
}

// Lease is who holds a named lease, and until when.
type Lease struct {
	Name    string    `json:"name"`
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

var _ Leases = (*DB)(nil)

// The bbolt store keeps its leases in memory: one process owns the file
// (bbolt locks it), so a lease can only ever be contended inside that
// process, and after a restart there is no other holder to wait for.
type leaseTable struct {
	mu     sync.Mutex
	leases map[string]Lease
}

// leaseTables maps an open database to its leases (DB has no field for
// them, to keep this additive).
var leaseTables sync.Map // *DB -> *leaseTable

func (db *DB) leaseTable() *leaseTable {
	v, _ := leaseTables.LoadOrStore(db, &leaseTable{leases: map[string]Lease{}})
	return v.(*leaseTable)
}

func checkLease(name, owner string) error {
	if strings.TrimSpace(name) == "" || strings.TrimSpace(owner) == "" {
		return errors.New("store: a lease needs a name and an owner")
	}
	return nil
}

// AcquireLease takes or renews a lease (see Leases).
func (db *DB) AcquireLease(name, owner string, now time.Time, ttl time.Duration) (Lease, bool, error) {
	if err := checkLease(name, owner); err != nil {
		return Lease{}, false, err
	}
	if ttl <= 0 {
		return Lease{}, false, errors.New("store: a lease needs a positive duration")
	}
	t := db.leaseTable()
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, held := t.leases[name]
	if held && cur.Owner != owner && now.Before(cur.Expires) {
		return cur, false, nil
	}
	l := Lease{Name: name, Owner: owner, Expires: now.Add(ttl)}
	t.leases[name] = l
	return l, true, nil
}

// ReleaseLease gives up owner's lease (see Leases).
func (db *DB) ReleaseLease(name, owner string) (bool, error) {
	t := db.leaseTable()
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.leases[name]; !ok || cur.Owner != owner {
		return false, nil
	}
	delete(t.leases, name)
	return true, nil
}

// LeaseList lists the leases, by name.
func (db *DB) LeaseList() ([]Lease, error) {
	t := db.leaseTable()
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Lease, 0, len(t.leases))
	for _, l := range t.leases {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Lease) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
