package delivery

import (
	"sync"
	"time"

	"kadenz/store"
)

// The hand-off: a just-accepted message waits in memory for its first
// delivery attempt.
//
// Transactional mail is due the moment it is accepted, and a worker
// usually claims it within milliseconds. Reading it back from the store
// then costs a read transaction for the message record, another for the
// body, and the body's decompression (store/bodycodec.go): work the relay
// did the other way round a moment before. So intake offers the message
// (as stored, and its body) once the store holds it, and the first worker
// that delivers one of its envelopes takes it from here instead.
//
// The store stays the record of what is owed: the dispatcher claims from
// the store as always, and only what a parcel carries comes from memory.
// An envelope that is never claimed here (another node took it, the
// process died, the message was erased) just leaves its message to be
// dropped by age or by the byte bound; a later attempt, a restart or a
// second parcel of the same message reads the store as before. Nothing
// is ever delivered that the store does not list as due.

// handoff holds offered messages, oldest first, within a byte and an age
// bound.
type handoff struct {
	mu     sync.Mutex
	byID   map[string]*offered
	order  []*offered // offer order; taken ones are skipped when reached
	bytes  int
	limit  int
	maxAge time.Duration
}

type offered struct {
	msg   store.Message
	body  []byte
	done  func() // told once the body is no longer needed; may be nil
	at    time.Time
	taken bool
}

// Defaults for the hand-off's bounds: a few hundred messages of the size
// transactional mail usually has, and long enough for a busy queue to
// reach them, short enough that memory never keeps what the store has
// long been the only source of.
const (
	handoffBytes  = 4 << 20
	handoffMaxAge = 30 * time.Second
	// handoffCount bounds the offer list, taken entries included (they
	// leave it when they reach its front).
	handoffCount = 4096
)

func newHandoff(limit int, maxAge time.Duration) *handoff {
	return &handoff{byID: map[string]*offered{}, limit: limit, maxAge: maxAge}
}

// offer keeps msg and body for take; false if they do not fit (then done
// is not called: the caller keeps the body).
func (h *handoff) offer(msg store.Message, body []byte, done func(), now time.Time) bool {
	if len(body) > h.limit || len(body) == 0 {
		return false
	}
	var drop []*offered
	h.mu.Lock()
	if _, dup := h.byID[msg.ID]; dup {
		h.mu.Unlock()
		return false
	}
	// Make room, and let go of whatever waited longer than maxAge.
	for len(h.order) > 0 {
		o := h.order[0]
		if !o.taken && h.bytes+len(body) <= h.limit && now.Sub(o.at) < h.maxAge && len(h.order) < handoffCount {
			break
		}
		h.order[0] = nil
		h.order = h.order[1:]
		if !o.taken {
			drop = append(drop, h.remove(o))
		}
	}
	o := &offered{msg: msg, body: body, done: done, at: now}
	h.byID[msg.ID] = o
	h.order = append(h.order, o)
	h.bytes += len(body)
	h.mu.Unlock()
	for _, o := range drop {
		o.release()
	}
	return true
}

// remove forgets o (h.mu held) and returns it.
func (h *handoff) remove(o *offered) *offered {
	o.taken = true
	delete(h.byID, o.msg.ID)
	h.bytes -= len(o.body)
	return o
}

// take returns the message offered under id and removes it; the caller
// calls release on it once done with its body.
func (h *handoff) take(id string) (*offered, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	o, ok := h.byID[id]
	if !ok {
		return nil, false
	}
	return h.remove(o), true
}

// release tells the offerer the body is no longer needed.
func (o *offered) release() {
	if o.done != nil {
		o.done()
	}
}

// drain lets go of everything still waiting (the queue stopped).
func (h *handoff) drain() {
	h.mu.Lock()
	var drop []*offered
	for _, o := range h.order {
		if !o.taken {
			drop = append(drop, h.remove(o))
		}
	}
	h.order = nil
	h.mu.Unlock()
	for _, o := range drop {
		o.release()
	}
}

// held reports how many messages and bytes wait (tests).
func (h *handoff) held() (n, bytes int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byID), h.bytes
}
