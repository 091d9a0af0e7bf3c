// Package governor is the Kadenz daemon: it wires the store, SMTP intake,
// delivery, the decision engine, the feedback room and the admin listener
// together and runs them as one relay.
//
// Intake hands each accepted message here; the relay classifies it (see
// classify.go), stamps it with an ID and a Received header, and stores it
// with one envelope per recipient (durable before the client hears 250).
// Transactional envelopes are due for delivery at once. Marketing
// envelopes are held for the decision engine (governor/engine), which
// releases, defers or suppresses them per recipient and records why.
// What comes back is applied by governor/feedback; operators ask through
// governor/admin. The relay runs on any store.Store (Options.Backend), the
// bbolt file in the data directory by default.
package governor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kadenz/config"
	"kadenz/governor/admin"
	"kadenz/governor/delivery"
	"kadenz/governor/engine"
	"kadenz/governor/feedback"
	"kadenz/governor/intake"
	"kadenz/scoring"
	"kadenz/store"
)

// Options configure a Relay.
type Options struct {
	Config *config.Config
	Logger *slog.Logger
	// Now is the clock; time.Now if nil. Ignored when Clock is set.
	Now func() time.Time
	// Clock, if set, is a virtual clock the admin API can move.
	Clock *VirtualClock
	// Store tunes the database (tests may turn off fsync).
	Store store.Options
	// Backend, if set, is the store the relay runs on instead of the
	// bbolt file in the data directory (then Store is unused). The relay
	// owns it from New on: it closes it at Shutdown, or when New fails.
	Backend store.Store
	// HandoffBytes bounds what the delivery queue keeps of just-accepted
	// messages (delivery.Options.HandoffBytes); 0: its default. Tests make
	// it small.
	HandoffBytes int
	// Random supplies the random part of message IDs; crypto/rand if nil.
	// A simulation passes a seeded source so that a run repeats exactly:
	// IDs order the engine's candidates and seed its exploration draws.
	// Intake calls it from many sessions at once, so a source for a relay
	// that serves SMTP must be safe for concurrent use.
	Random io.Reader
}

// Relay is one running Kadenz daemon.
type Relay struct {
	log    *slog.Logger
	now    func() time.Time
	clock  *VirtualClock // nil for real time
	random io.Reader
	db     store.Store
	// handoffBytes: Options.HandoffBytes.
	handoffBytes int
	intake       *intake.Server
	queue        *delivery.Queue
	engine       *engine.Engine
	// feedback applies bounces, complaints, replies and events.
	feedback *feedback.Applier
	// events is the events API's journal (eventjournal.go); nil on a
	// backend without a file of its own.
	events *feedback.EventJournal
	chores *choreRunner
	// admin is the admin listener (adminhooks.go), nil when it does not run.
	admin *admin.Server

	listeners []net.Listener
	serving   sync.WaitGroup
	// mailboxes are the feedback IMAP readers (feedback_ingest.go).
	mailboxes *mailboxReaders
	// leases hold this node's singletons (cluster.go).
	leases *leaseKeeper

	// Operator surface (metrics.go, reload.go, retention.go).
	metrics *metrics
	reload  reloadState
}

// New validates the configuration, opens the database and builds the
// relay's parts; Start runs them.
func New(opts Options) (*Relay, error) {
	cfg := opts.Config
	if errs := cfg.Validate(); errs != nil {
		return nil, errs
	}
	r := &Relay{log: opts.Logger, now: opts.Now, clock: opts.Clock, random: opts.Random, handoffBytes: opts.HandoffBytes}
	// The one configuration handle: r.config(). Start-bound parts never
	// change in it; reloadable ones are swapped by Reload (reload.go).
	r.reload.live.Store(cfg)
	if r.clock != nil {
		r.now = r.clock.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.random == nil {
		r.random = newRandomBuffer(rand.Reader)
	}
	db := opts.Backend
	if db == nil {
		var err error
		if db, err = openBackend(cfg); err != nil {
			return nil, err
		}
	}
	if db == nil {
		bolt, err := store.Open(DatabasePath(cfg.DataDir), opts.Store)
		if err != nil {
			return nil, err
		}
		db = bolt
	}
	r.db = db
	if err := r.newRelayLeases(); err != nil {
		db.Close()
		return nil, err
	}
	if err := r.initOperations(); err != nil {
		db.Close()
		return nil, err
	}
	if err := r.build(); err != nil {
		db.Close()
		return nil, err
	}
	if err := r.lowerAddressKeys(); err != nil {
		db.Close()
		return nil, err
	}
	if err := r.openEventJournal(); err != nil {
		db.Close()
		return nil, err
	}
	return r, nil
}

// build makes the relay's parts, each handed what it needs: intake, the
// delivery queue, the engine, the feedback room, the chores.
func (r *Relay) build() error {
	cfg := r.config()
	if err := r.buildIntake(cfg); err != nil {
		return err
	}
	transport, err := r.transport()
	if err != nil {
		return err
	}
	r.queue, err = delivery.New(delivery.Options{
		DB:               r.db,
		Transport:        transport,
		Concurrency:      cfg.Delivery.Concurrency,
		RetryInitial:     cfg.Delivery.RetryInitial,
		RetryMax:         cfg.Delivery.RetryMax,
		MaxQueueLifetime: cfg.Delivery.MaxQueueLifetime,
		Logger:           r.log.With("part", "delivery"),
		Now:              r.now,
		Prepare:          r.prepareOutgoing,
		Observe:          r.observeDelivery, // metrics, then the feedback room
		DelayWarning:     cfg.Delivery.DelayWarning,
		RemoteMTA:        upstreamHost(cfg.Delivery.Upstream),
		Notify:           r.queueNotice,
		HandoffBytes:     r.handoffBytes,
	})
	if err != nil {
		return err
	}
	r.engine, err = engine.New(engine.Options{
		Governor: &cfg.Governor, Store: r.db, Logger: r.log.With("part", "engine"), Now: r.now,
		Released: r.queue.Kick, Decided: r.metrics.decidedRound,
		Lease: r.mayDecide,
		Poll:  r.enginePoll(),
	})
	if err != nil {
		return err
	}
	r.metrics.readers.watch(r.engine.Learned)
	suspended, err := r.db.SuspendedCampaigns()
	if err != nil {
		return err
	}
	r.engine.SetSuspended(suspended)
	r.feedback = feedback.New(feedback.Options{
		Store: r.db, Engine: r.engine, Config: r.config, Now: r.now, Logger: r.log,
		NewMessageID: func(t time.Time) string { return newMessageID(t, r.random) },
		KickDelivery: r.queue.Kick,
	})
	r.chores = newChoreRunner(r.log.With("part", "chores"), r.now)
	r.addChore("sweep", cfg.Governor.Chores.Sweep, r.sweep)
	r.addChore("retention", cfg.Governor.Chores.Retention, r.retentionChore)
	r.addEventIDChore()
	return nil
}

// buildIntake makes the SMTP server from the configuration.
func (r *Relay) buildIntake(cfg *config.Config) error {
	in := intake.Options{
		Hostname:          cfg.Hostname,
		AllowInsecureAuth: cfg.Intake.AllowInsecureAuth,
		MaxMessageBytes:   cfg.Intake.MaxMessageBytes,
		MaxRecipients:     cfg.Intake.MaxRecipients,
		MaxLineLength:     cfg.Intake.MaxLineLength,
		MaxConnections:    cfg.Intake.MaxConnections,
		ReadTimeout:       cfg.Intake.ReadTimeout,
		WriteTimeout:      cfg.Intake.WriteTimeout,
		NormalizeBareLF:   cfg.Intake.BareNewlines == config.BareNewlinesNormalize,
		Accept:            r.accept,
		Logger:            r.log.With("part", "intake"),
		Now:               r.now,

		MaxConnectionsPerClient: cfg.Intake.MaxConnectionsPerClient,
		ReservedConnections:     cfg.Intake.ReservedConnections,
		MaxJunkCommands:         cfg.Intake.MaxJunkCommands,
		IdleTimeout:             cfg.Intake.IdleTimeout,
		AuthFailureLimit:        cfg.Intake.AuthFailureLimit,
		AuthLockout:             cfg.Intake.AuthLockout,
		Count:                   r.countIntakeEvent,
		SpoolDir:                filepath.Join(cfg.DataDir, "spool"),
		SpoolThreshold:          int(cfg.Intake.SpoolThreshold),
	}
	if c := cfg.Intake.TLS; c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return fmt.Errorf("intake TLS certificate: %w", err)
		}
		in.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	for _, n := range cfg.Intake.ClientNetworks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return fmt.Errorf("intake client network: %w", err)
		}
		in.ClientNetworks = append(in.ClientNetworks, p.Masked())
	}
	for _, u := range cfg.Intake.Users {
		in.Users = append(in.Users, intake.User{Name: u.Name, PasswordHash: []byte(u.PasswordHash)})
	}
	var err error
	r.intake, err = intake.New(in)
	return err
}

// transport is the smarthost when one is configured, else the outbox.
func (r *Relay) transport() (delivery.Transport, error) {
	d := r.config().Delivery
	if d.Upstream == "" {
		dir := filepath.Join(r.config().DataDir, "outbox")
		r.log.Info("no upstream configured: released mail is written to the outbox", "dir", dir)
		return delivery.NewOutbox(dir)
	}
	tlsConfig, err := config.ClientTLS(d.CAFile, d.InsecureSkipVerify)
	if err != nil {
		return nil, fmt.Errorf("delivery ca_file: %w", err)
	}
	password, err := d.ResolvePassword()
	if err != nil {
		return nil, err
	}
	return delivery.NewSmarthost(delivery.SmarthostOptions{
		Addr:           d.Upstream,
		TLSMode:        d.TLS,
		TLS:            tlsConfig,
		Hostname:       r.config().Hostname,
		Username:       d.Username,
		Password:       password,
		ConnectTimeout: d.ConnectTimeout,
		CommandTimeout: d.CommandTimeout,
		Logger:         r.log.With("part", "delivery"),
	})
}

// Start binds the listeners and starts serving and delivering. It returns
// once the SMTP port accepts connections.
func (r *Relay) Start() error {
	if err := r.queue.Start(); err != nil {
		return err
	}
	r.leases.start()
	r.engine.Start()
	r.chores.start()
	if err := r.startMailboxes(context.Background()); err != nil {
		return err
	}
	type endpoint struct {
		addr        string
		implicitTLS bool
	}
	eps := []endpoint{{r.config().Listen, false}}
	if r.config().Intake.TLSListen != "" {
		eps = append(eps, endpoint{r.config().Intake.TLSListen, true})
	}
	for _, ep := range eps {
		// No TCP keepalive probes: every session has read and write
		// timeouts of its own, and the probes' setup is four system calls
		// on each of the short connections a CRM opens per message.
		lc := net.ListenConfig{KeepAlive: -1}
		l, err := lc.Listen(context.Background(), "tcp", ep.addr)
		if err != nil {
			r.closeListeners()
			return fmt.Errorf("listen %s: %w", ep.addr, err)
		}
		r.listeners = append(r.listeners, l)
		r.serving.Add(1)
		go func() {
			defer r.serving.Done()
			if err := r.intake.Serve(l, ep.implicitTLS); err != nil {
				r.log.Error("smtp listener stopped", "addr", l.Addr().String(), "error", err)
			}
		}()
		r.log.Info("listening for SMTP", "addr", l.Addr().String(), "implicit_tls", ep.implicitTLS)
	}
	if r.config().Admin.Listen != "" {
		if err := r.startAdmin(); err != nil {
			r.closeListeners()
			return err
		}
	}
	return nil
}

func (r *Relay) closeListeners() {
	for _, l := range r.listeners {
		l.Close()
	}
}

// Addr returns the address the SMTP listener is bound to (useful with port 0).
func (r *Relay) Addr() net.Addr { return r.listeners[0].Addr() }

// DB is the store the relay runs on (tests read it), with every event the
// events API answered before the call applied (the event journal flushed).
func (r *Relay) DB() store.Store {
	if err := r.flushEvents(false); err != nil {
		r.log.Error("applying journalled events", "error", err)
	}
	return r.db
}

// CommitStats reports how many commits the store ran and how many writes
// they carried, where the backend counts them (store.GroupCommitter);
// ok is false where it does not.
func (r *Relay) CommitStats() (commits, writes int64, ok bool) {
	gc, ok := r.db.(store.GroupCommitter)
	if !ok {
		return 0, 0, false
	}
	commits, writes = gc.CommitStats()
	return commits, writes, true
}

// Shutdown stops accepting mail, lets sessions and deliveries in flight
// finish until ctx ends, then closes the database. Whatever was cut off is
// safe: unacknowledged messages were never promised, in-flight envelopes are
// due again at the next start.
func (r *Relay) Shutdown(ctx context.Context) error {
	var errs []error
	if r.admin != nil {
		errs = append(errs, r.admin.Shutdown(ctx))
	}
	if err := r.intake.Shutdown(ctx); err != nil {
		r.log.Warn("SMTP sessions still open at shutdown deadline; closing them", "error", err)
		r.intake.Close()
	}
	// go-smtp closes only the listeners its Serve has registered: one whose
	// goroutine had not got that far (a Shutdown right after Start) would
	// accept for ever. Closing them here ends that Serve too (it sees the
	// server closed and returns).
	r.closeListeners()
	r.serving.Wait()
	if r.events != nil {
		// No event arrives any more: apply what is journalled, so that
		// the file holds everything (a failure leaves it journalled, and
		// the next start applies it).
		if err := r.events.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	r.chores.shutdown()
	r.stopMailboxes()
	r.engine.Shutdown()
	r.leases.shutdown() // after the work under them stopped
	if err := r.queue.Shutdown(ctx); err != nil {
		r.log.Warn("deliveries still in flight at shutdown deadline; they are retried at next start", "error", err)
	}
	errs = append(errs, r.db.Close())
	return errors.Join(errs...)
}

// accept is intake's AcceptFunc: it classifies the message, gives it its
// ID and Received header, and stores it, held if it is marketing mail to be
// governed; the store returns once the commit is on disk.
func (r *Relay) accept(_ context.Context, sub *intake.Submission) (string, error) {
	g := &r.config().Governor // the live one: a reload may have changed it
	id := newMessageID(sub.Received, r.random)
	c, err := r.classifySubmission(sub, g, id)
	if err != nil {
		return "", err
	}
	// A spooled (large) message is stored from its file in parts; only
	// its header is rewritten in memory.
	var body []byte
	var head []byte
	var added string
	var size int
	// handOff offers the message and its body to the delivery queue
	// (delivery.Queue.Offer); nil for a spooled message.
	var handOff func(store.Message) bool
	var release func() // lets go of the body's buffer (its holders: this call, the queue)
	handedOff := false
	if sub.Spooled != nil {
		head, added = r.storedHead(sub, c.header, id)
		size = len(head) + int(sub.Size-int64(headerBlockEnd(sub.Data)))
	} else {
		buf := storedBodies.Get().(*[]byte)
		body, added = r.storedBody((*buf)[:0], sub, c.header, id)
		size = len(body)
		// The store keeps no reference to body once AcceptWith returned
		// (bbolt copies it into its pages at commit), so the buffer serves
		// the next message; a rare large one is left to the collector.
		// The delivery queue may hold it too: then it goes back when both
		// are done with it, whichever is last (the queue may let go of it
		// before AcceptWith returned, if it needed the room).
		var holders atomic.Int32
		holders.Store(1)
		release = func() {
			if holders.Add(-1) == 0 && cap(body) <= maxPooledBody {
				*buf = body[:0]
				storedBodies.Put(buf)
			}
		}
		defer release()
		handOff = func(msg store.Message) bool {
			holders.Add(1)
			if !r.queue.Offer(store.AsStored(msg), body, release) {
				holders.Add(-1)
				return false
			}
			return true
		}
	}
	msg := store.Message{
		ID:          id,
		From:        sub.From,
		Received:    sub.Received,
		Size:        size,
		ClientAddr:  sub.ClientAddr.String(),
		AuthUser:    sub.AuthUser,
		Class:       c.class,
		ClassReason: c.reason,
		Features:    c.featuresJSON,
		Ret:         sub.Ret,
		EnvID:       sub.EnvID,
		SMTPUTF8:    sub.SMTPUTF8,
	}
	if c.header != nil {
		msg.HeaderID = strings.Trim(strings.TrimSpace(c.header.Get("Message-Id")), "<>")
		if msg.HeaderID == "" && added != "" {
			msg.HeaderID = id + "@" + r.config().Hostname
		}
	}
	// Mail the governor does not hold is due the moment it is stored:
	// the delivery queue gets it now, before the commit, so that no
	// worker can claim its envelopes before it is there to take. Nothing
	// can be claimed (and so nothing sent) before the commit.
	// Transactional mail the queue has room for is stored claimed, as the
	// dispatcher would claim it a moment later, and goes to a worker
	// straight from here (delivery.Queue.Reserve).
	born := false
	if handOff != nil && !c.governed {
		handedOff = handOff(msg)
		born = handedOff && c.class == config.ClassTransactional && r.queue.Reserve()
	}
	u := r.undelayed(sub, g, c)
	held := 0
	prepare := func(i int, e *store.Envelope) {
		if i < len(sub.Notify) {
			e.Notify = sub.Notify[i]
		}
		if i < len(sub.ORcpt) {
			e.ORcpt = sub.ORcpt[i]
		}
		switch {
		case !c.governed:
			// A person is waiting for it: ahead of any backlog of
			// released marketing mail.
			e.Express = c.class == config.ClassTransactional
			if born {
				e.State = store.StateDelivering
			}
		case u.holdout[i]:
			e.Holdout = true
			if u.suspended {
				e.State = store.StateReview
			}
		case u.exempt[i]:
			if u.suspended {
				e.State = store.StateReview
			}
		default:
			e.State, e.Due = store.StateHeld, sub.Received.Add(g.HoldWindow)
			held++
		}
	}
	var envs []store.Envelope
	if sub.Spooled != nil {
		off := int64(headerBlockEnd(sub.Data))
		envs, err = acceptStream(r.db, msg, io.MultiReader(bytes.NewReader(head), io.NewSectionReader(sub.Spooled, off, sub.Size-off)),
			sub.To, sub.Received, prepare)
	} else {
		envs, err = r.db.AcceptWith(msg, body, sub.To, sub.Received, prepare)
	}
	if err != nil {
		if handedOff && r.queue.Withdraw(id) {
			release() // the queue's hold: it gave the body back without a word
		}
		if born {
			r.queue.Unreserve()
		}
		return "", err
	}
	if born {
		r.queue.Born(envs)
	}
	if u.isExempt && !u.suspended {
		r.recordExempt(envs, u.exempt, &c.features, sub.Received)
	}
	if held < len(envs) {
		r.queue.Kick()
	}
	if held > 0 {
		r.engine.Kick()
	}
	r.metrics.messageAccepted(c.class)
	r.log.Info("accepted", "message", id, "from", sub.From, "recipients", len(envs), "held", held, "size", size,
		"class", c.class, "class_reason", c.reason, "client", msg.ClientAddr, "user", sub.AuthUser, "message_id", msg.HeaderID)
	return id, nil
}

// acceptStream stores a spooled message from its reader where the store
// can (store.BodyStreams); a store that cannot gets the body read whole.
func acceptStream(db store.Store, msg store.Message, body io.Reader, rcpts []string, now time.Time, prepare func(int, *store.Envelope)) ([]store.Envelope, error) {
	if bs, ok := db.(store.BodyStreams); ok {
		return bs.AcceptStream(msg, body, rcpts, now, prepare)
	}
	whole, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("reading the spooled message: %w", err)
	}
	return db.AcceptWith(msg, whole, rcpts, now, prepare)
}

// classified is what intake learned of a submission before storing it.
type classified struct {
	header        mail.Header // nil if unreadable even line by line
	class, reason string
	// governed: marketing mail the governor decides on (not in mode off).
	governed     bool
	features     scoring.Features // governed mail only
	featuresJSON []byte
}

// classifySubmission classifies a submission and, if it is governed,
// extracts its features. What counts is what its submitter may say
// (governor.header_trust) and what can be read of its header.
func (r *Relay) classifySubmission(sub *intake.Submission, g *config.Governor, id string) (*classified, error) {
	view, ignored := untrustedRemoved(sub.Data, headerTrust(g.HeaderTrust, sub.AuthUser, sub.ClientAddr))
	if ignored != nil {
		r.log.Info("ignored X-Kadenz headers the submitter may not set", "headers", ignored,
			"client", sub.ClientAddr, "user", sub.AuthUser, "from", sub.From)
	}
	c := &classified{}
	var tolerant bool
	c.header, tolerant = readHeaderTolerant(view)
	c.class, c.reason = classify(c.header, sub.From, g)
	if tolerant {
		c.reason = "header not well-formed, read line by line: " + c.reason
	}
	c.governed = c.class == config.ClassMarketing && g.Mode != config.ModeOff
	if !c.governed {
		return c, nil
	}
	// Features come from the message as submitted, X-Kadenz-* included.
	var err error
	c.features, err = scoring.ExtractFeatures(view, scoring.ExtractOptions{})
	if err != nil {
		r.log.Warn("reading message features; deciding on what could be read", "message", id, "error", err)
	}
	c.featuresJSON, err = json.Marshal(c.features)
	return c, err
}

// storedBodies recycles the buffers stored messages are assembled in
// (Received field, added fields, the submission): one per message
// accepted, about the message's size.
var storedBodies = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledBody: a buffer grown by a large message is not kept for the
// small ones (intake spools anything past 1 MiB by default anyway).
const maxPooledBody = 1 << 20

// storedBody is the message as Kadenz stores and delivers it, appended to
// buf: its Received field, Message-ID and Date where they were missing
// (intake.add_missing_headers; added says which), then the submission
// without its X-Kadenz-* fields.
func (r *Relay) storedBody(buf []byte, sub *intake.Submission, header mail.Header, id string) (body []byte, added string) {
	cfg := r.config()
	data := stripKadenzHeaders(sub.Data)
	if cfg.Intake.AddMissingHeaders && header != nil {
		added = missingHeaders(header, id, cfg.Hostname, sub.Received)
	}
	body = slices.Grow(buf, len(data)+len(added)+300)
	body = appendReceived(body, sub, cfg.Hostname, id)
	return append(append(body, added...), data...), added
}

// storedHead is storedBody for a spooled message: the stored message's
// header block (Received, added fields, the header up to and including
// its empty line without its X-Kadenz-* fields); the rest of the message
// follows it unchanged from the spool file, from headerBlockEnd on.
func (r *Relay) storedHead(sub *intake.Submission, header mail.Header, id string) (head []byte, added string) {
	cfg := r.config()
	block := stripKadenzHeaders(sub.Data[:headerBlockEnd(sub.Data)])
	received := receivedHeader(sub, cfg.Hostname, id)
	if cfg.Intake.AddMissingHeaders && header != nil {
		added = missingHeaders(header, id, cfg.Hostname, sub.Received)
	}
	head = make([]byte, 0, len(received)+len(added)+len(block))
	return append(append(append(head, received...), added...), block...), added
}

// headerBlockEnd is where the header of data ends, its empty line
// included: 0 for a message without header fields, len(data) if data
// holds no empty line.
func headerBlockEnd(data []byte) int {
	if bytes.HasPrefix(data, []byte("\r\n")) {
		return 0
	}
	if end := bytes.Index(data, []byte("\r\n\r\n")); end >= 0 {
		return end + 4
	}
	return len(data)
}

// undelayedRecipients says which recipients of governed mail skip the
// hold: holdout recipients and those of an exempt campaign — unless they
// asked for none (an unsubscribe, complaint or hard bounce is honoured for
// everyone, so those go to the engine, which suppresses them). A suspended
// campaign sends nothing undelayed: that mail waits in review
// (campaigns.go).
type undelayedRecipients struct {
	holdout, exempt     []bool
	isExempt, suspended bool
}

func (r *Relay) undelayed(sub *intake.Submission, g *config.Governor, c *classified) undelayedRecipients {
	u := undelayedRecipients{holdout: make([]bool, len(sub.To)), exempt: make([]bool, len(sub.To))}
	if !c.governed {
		return u
	}
	u.isExempt = engine.ExemptFrom(g, c.features.Campaign, sub.From)
	u.suspended = r.engine.IsSuspended(c.features.Campaign)
	for i, rcpt := range sub.To {
		inGroup := engine.InHoldout(rcpt, g.Holdout)
		if (inGroup || u.isExempt) && !r.hardStopped(rcpt) { // at most one look-up per recipient
			u.holdout[i], u.exempt[i] = inGroup, !inGroup
		}
	}
	return u
}

// Message IDs sort by time of arrival: 48 bits of milliseconds, then 48
// random bits, in lower-case Crockford base32 (whose alphabet is in ASCII
// order, so IDs sort as their times do).
var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// randomBuffer reads the operating system's randomness a few kilobytes at
// a time for the message IDs of every session: one getrandom call per
// ID (six bytes) cost about 1% of the relay's CPU under load, much of it
// growing the stack of each session's young goroutine for the vDSO call.
// The bytes are as random as crypto/rand's; they only wait in memory.
type randomBuffer struct {
	mu  sync.Mutex
	buf *bufio.Reader
}

func newRandomBuffer(r io.Reader) *randomBuffer {
	return &randomBuffer{buf: bufio.NewReaderSize(r, 4096)}
}

func (b *randomBuffer) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return io.ReadFull(b.buf, p)
}

func newMessageID(t time.Time, random io.Reader) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixMilli())<<16)
	io.ReadFull(random, b[6:])
	return idEncoding.EncodeToString(b[:])
}

// receivedHeader is the trace header RFC 5321 section 4.4 asks a relay to
// add, with the protocol keyword of RFC 3848 (ESMTP, +S for TLS, +A for AUTH).
func receivedHeader(sub *intake.Submission, hostname, id string) string {
	return string(appendReceived(nil, sub, hostname, id))
}

// appendReceived appends receivedHeader's field to b, without formatting
// through fmt: it is written for every message accepted.
func appendReceived(b []byte, sub *intake.Submission, hostname, id string) []byte {
	b = append(b, "Received: from "...)
	b = append(b, headerSafe(sub.Helo)...)
	b = append(b, " (["...)
	if sub.ClientAddr.IsValid() {
		b = sub.ClientAddr.AppendTo(b)
	} else {
		b = append(b, sub.ClientAddr.String()...) // as fmt wrote it: "invalid IP"
	}
	b = append(b, "])\r\n\tby "...)
	b = append(b, hostname...)
	b = append(b, " (Kadenz) with ESMTP"...)
	if sub.TLS {
		b = append(b, 'S')
	}
	if sub.AuthUser != "" {
		b = append(b, 'A')
	}
	b = append(b, " id "...)
	b = append(b, id...)
	b = append(b, ";\r\n\t"...)
	b = sub.Received.AppendFormat(b, time.RFC1123Z)
	return append(b, "\r\n"...)
}

// missingHeaders returns the Message-ID and Date fields a submission
// lacks (RFC 5322 3.6.1, 3.6.4), with CRLF endings; "" when it has both.
// The Message-ID is the queue ID at our hostname, unique by construction.
func missingHeaders(h mail.Header, id, hostname string, received time.Time) string {
	var b strings.Builder
	if strings.TrimSpace(h.Get("Message-Id")) == "" {
		fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", id, hostname)
	}
	if strings.TrimSpace(h.Get("Date")) == "" {
		fmt.Fprintf(&b, "Date: %s\r\n", received.Format(time.RFC1123Z))
	}
	return b.String()
}

// headerSafe keeps a client-supplied name from breaking the header.
func headerSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || r == '(' || r == ')' || r == ';' {
			return -1
		}
		return r
	}, s)
	if s == "" || len(s) > 255 {
		return "unknown"
	}
	return s
}

// hardStopped reports whether a recipient's profile forbids marketing mail.
// An unreadable profile counts as stopped: in doubt, do not send marketing.
func (r *Relay) hardStopped(rcpt string) bool {
	if _, listed, err := r.db.SuppressionOf(rcpt); err != nil || listed {
		return true // the suppression list (store/suppress.go)
	}
	raw, err := r.db.Profile(rcpt)
	if err != nil {
		return true
	}
	if at, err := r.db.Forgotten(rcpt); err != nil || !at.IsZero() {
		return true // erased after opting out: still out
	}
	p, err := scoring.DecodeProfile(raw)
	return err != nil || p.HardStopped()
}
