package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkTransactionalLife is what the store does for one transactional
// message from acceptance to its recorded delivery: stored due, claimed by
// the dispatcher, settled ("due"); or stored already claimed, as intake
// does when the delivery queue has room, and settled ("claimed"). One
// commit per step, without fsync: the instructions of the commit loop,
// not the disk's time.
//
//	go test -run '^$' -bench TransactionalLife -benchmem ./store/
func BenchmarkTransactionalLife(b *testing.B) {
	body := make([]byte, 0, 5000)
	for i := 0; len(body) < 5000; i++ {
		body = fmt.Appendf(body, "Item %d: %x, %d pieces\r\n", i, uint64(i)*0x9e3779b97f4a7c15, i%7+1)
	}
	for _, way := range []string{"due", "claimed"} {
		b.Run(way, func(b *testing.B) {
			db, err := Open(filepath.Join(b.TempDir(), "kadenz.db"), Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			now := time.Unix(1764000000, 0)
			i := 0
			for b.Loop() {
				i++
				now = now.Add(time.Millisecond)
				msg := Message{ID: fmt.Sprintf("m%08d", i), From: "shop@x.test", Received: now, Class: "transactional",
					HeaderID: fmt.Sprintf("m%08d@x.test", i), Size: len(body)}
				envs, err := db.AcceptWith(msg, body, []string{"ann@y.test"}, now, func(_ int, e *Envelope) {
					e.Express = true
					if way == "claimed" {
						e.State = StateDelivering
					}
				})
				if err != nil {
					b.Fatal(err)
				}
				if way == "due" {
					if envs, err = db.Settle(nil, now, 1); err != nil || len(envs) != 1 {
						b.Fatal(len(envs), err)
					}
				}
				envs[0].State, envs[0].Attempts = StateDelivered, 1
				if _, err := db.Settle(envs, now, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
