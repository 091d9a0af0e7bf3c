package governor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"kadenz/config"
	"kadenz/store"
	"kadenz/store/postgres"
)

// Several nodes on one database (docs/scale.md).
//
// With store.backend: postgres every node runs every part: intake,
// delivery (claims keep two nodes off one envelope) and the admin API.
// What must run on one node at a time runs under a named lease
// (store.Leases), which the holder renews every third of its length and
// gives up at shutdown; when a holder dies, another node takes the lease
// once it has expired:
//
//   - "decider": the decision engine's rounds. One lease for the whole
//     engine is the simplest way to keep caps, fatigue and the hold-window
//     auction true across nodes: a recipient's held mail is only ever
//     decided by one node at a time, so two nodes cannot both spend the
//     last unit of a cap or both win one auction. The cost is that
//     decisions do not spread over the nodes; sharding the recipients
//     over several leases is future work.
//   - "mailbox:NAME": each feedback mailbox's reader.
//   - "chore:NAME": each cron chore (sweep, retention, event IDs).
//
// On bbolt the same code runs against the store's in-memory leases: one
// process, one owner, so every lease is granted and nothing changes.

// openBackend opens the store the configuration names when it is not
// bbolt (nil, nil then: New opens the bbolt file itself).
func openBackend(cfg *config.Config) (store.Store, error) {
	if cfg.Store.Backend != config.BackendPostgres {
		return nil, nil
	}
	p := cfg.Store.Postgres
	password, err := p.ResolvePassword()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := postgres.Open(ctx, p.URL, postgres.Options{Node: p.Node, Password: password})
	if err != nil {
		return nil, fmt.Errorf("store.postgres: %w", err)
	}
	return db, nil
}

// sharedNode is the node name of a store that several processes share,
// and "" for one that only this process opens (bbolt).
func sharedNode(db store.Store) string {
	if n, ok := db.(interface{ Node() string }); ok {
		return n.Node()
	}
	return ""
}

// leaseKeeper holds this node's singleton leases: Hold takes or renews
// one before a piece of singleton work, and a loop renews every lease
// held every third of its length, so a long chore or a mailbox session
// keeps its lease. Lease times are the relay's clock (which may be
// virtual); the renewal loop ticks in real time.
type leaseKeeper struct {
	db    store.Leases
	owner string
	ttl   time.Duration
	now   func() time.Time
	log   *slog.Logger

	mu   sync.Mutex
	held map[string]time.Time // lease name -> expiry, by the relay's clock
	// tried is when a lease this node does not hold was last asked for:
	// a node that is not the holder asks at most every retry(), however
	// often its work is kicked (every acceptance kicks the engine).
	tried map[string]time.Time

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	started  bool
}

func newLeaseKeeper(db store.Leases, owner string, ttl time.Duration, now func() time.Time, log *slog.Logger) *leaseKeeper {
	return &leaseKeeper{db: db, owner: owner, ttl: ttl, now: now, log: log,
		held: map[string]time.Time{}, tried: map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
}

// Hold reports whether this node holds the lease name for at least two
// thirds of its length from now, taking or renewing it if needed.
func (k *leaseKeeper) Hold(name string) bool {
	now := k.now()
	k.mu.Lock()
	exp, had := k.held[name]
	last, asked := k.tried[name]
	if !had {
		if asked && now.Sub(last) < k.retry() && !now.Before(last) {
			k.mu.Unlock()
			return false
		}
		k.tried[name] = now
	}
	k.mu.Unlock()
	if had && exp.Sub(now) > k.ttl*2/3 {
		return true
	}
	return k.acquire(name, now, had)
}

func (k *leaseKeeper) acquire(name string, now time.Time, had bool) bool {
	l, ok, err := k.db.AcquireLease(name, k.owner, now, k.ttl)
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case err != nil:
		// Without the database we cannot know whether another node took
		// over: stop the work rather than risk doing it twice.
		delete(k.held, name)
		k.log.Warn("lease: cannot take or renew; this node stops that work until it can", "lease", name, "error", err)
		return false
	case !ok:
		if had {
			k.log.Warn("lease lost to another node", "lease", name, "holder", l.Owner)
		}
		delete(k.held, name)
		return false
	}
	if !had {
		k.log.Info("lease taken: this node now does that work", "lease", name, "until", l.Expires)
	}
	k.held[name] = l.Expires
	return true
}

// Holds reports whether the lease is held now, without touching the
// database.
func (k *leaseKeeper) Holds(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	exp, ok := k.held[name]
	return ok && k.now().Before(exp)
}

// retry is how often a node that does not hold a lease tries again, and
// how often a holder renews: a third of the lease.
func (k *leaseKeeper) retry() time.Duration { return k.ttl / 3 }

func (k *leaseKeeper) start() {
	k.started = true
	go k.loop()
}

func (k *leaseKeeper) loop() {
	defer close(k.done)
	t := time.NewTicker(k.retry())
	defer t.Stop()
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
		}
		k.mu.Lock()
		names := make([]string, 0, len(k.held))
		for n := range k.held {
			names = append(names, n)
		}
		k.mu.Unlock()
		slices.Sort(names)
		for _, n := range names {
			k.acquire(n, k.now(), true)
		}
	}
}

// shutdown stops renewing and gives every lease up, so another node takes
// the work over at once instead of after the lease expires. Call it once
// the work under the leases has stopped.
func (k *leaseKeeper) shutdown() {
	k.stopOnce.Do(func() { close(k.stop) })
	if k.started {
		<-k.done
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for n := range k.held {
		if _, err := k.db.ReleaseLease(n, k.owner); err != nil {
			k.log.Warn("lease not released; another node takes it when it expires", "lease", n, "error", err)
		}
		delete(k.held, n)
	}
}

// newRelayLeases makes the relay's lease keeper: the store's leases under
// this node's name (the host name on bbolt, where only this process
// asks).
func (r *Relay) newRelayLeases() error {
	ls, ok := r.db.(store.Leases)
	if !ok {
		// A store without leases is one process's own: every lease is
		// this node's.
		ls = &localLeases{}
	}
	owner := sharedNode(r.db)
	if owner == "" {
		owner, _ = os.Hostname()
		if owner == "" {
			owner = "kadenz"
		}
	}
	ttl := config.DefaultLease
	if r.config().Store.Backend == config.BackendPostgres {
		ttl = r.config().Store.Postgres.LeaseOrDefault()
	}
	r.leases = newLeaseKeeper(ls, owner, ttl, r.now, r.log.With("part", "leases"))
	return nil
}

// superviseMailbox runs run (a mailbox reader) while this node holds the
// mailbox's lease, stopping it when the lease is lost, until ctx ends.
func (r *Relay) superviseMailbox(ctx context.Context, name string, run func(context.Context)) {
	lease := "mailbox:" + name
	k := r.leases
	for {
		if k.Hold(lease) {
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				run(rctx)
			}()
		holding:
			for {
				t := time.NewTimer(k.retry())
				select {
				case <-ctx.Done():
					t.Stop()
					break holding
				case <-done:
					t.Stop()
					break holding
				case <-t.C:
				}
				if !k.Hold(lease) {
					break
				}
			}
			cancel()
			<-done
		}
		t := time.NewTimer(k.retry())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// enginePoll bounds the decision loop's sleep on a shared database: the
// engine learns of held mail that other nodes accepted only by looking
// (nothing kicks it across nodes), so it looks every tenth of a lease,
// at least every 100 ms. On bbolt every acceptance kicks it: 0, the
// engine's own bound.
func (r *Relay) enginePoll() time.Duration {
	if sharedNode(r.db) == "" {
		return 0
	}
	return max(r.leases.ttl/10, 100*time.Millisecond)
}

// localLeases stands in for a store without leases (one process): a lease
// is contended only inside this process.
type localLeases struct {
	mu     sync.Mutex
	leases map[string]store.Lease
}

func (l *localLeases) AcquireLease(name, owner string, now time.Time, ttl time.Duration) (store.Lease, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.leases[name]; ok && cur.Owner != owner && now.Before(cur.Expires) {
		return cur, false, nil
	}
	if l.leases == nil {
		l.leases = map[string]store.Lease{}
	}
	cur := store.Lease{Name: name, Owner: owner, Expires: now.Add(ttl)}
	l.leases[name] = cur
	return cur, true, nil
}

func (l *localLeases) ReleaseLease(name, owner string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.leases[name]; ok && cur.Owner == owner {
		delete(l.leases, name)
		return true, nil
	}
	return false, nil
}

func (l *localLeases) LeaseList() ([]store.Lease, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]store.Lease, 0, len(l.leases))
	for _, v := range l.leases {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b store.Lease) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// mayDecide is the engine's question before each round: does this node
// hold the decider lease? On a shared database the holder also reads the
// suspended campaigns again, since an operator may have suspended one
// through another node's admin API (which updates only that node's
// engine); it is one small query per round.
func (r *Relay) mayDecide() bool {
	if !r.leases.Hold("decider") {
		return false
	}
	if sharedNode(r.db) != "" {
		if set, err := r.db.SuspendedCampaigns(); err == nil {
			r.engine.SetSuspended(set)
		} else {
			r.log.Warn("reading suspended campaigns; the last known set applies", "error", err)
		}
	}
	return true
}
