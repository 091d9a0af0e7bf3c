package intake

import (
	"net"
	"sync"
	"time"
)

// replyConn holds what the SMTP server writes until it next reads from the
// client, then sends it in one write.
//
// go-smtp flushes after every reply line, so a 10-line EHLO answer costs ten
// write system calls and ten TCP segments, each of which wakes the client.
// An SMTP server only ever writes in answer to what it has read, and it
// reads again only when it has nothing left to say, so sending the pending
// replies just before the next read changes nothing a client can observe
// except the number of packets: replies to pipelined commands (RFC 2920
// section 3.2) still leave before the server waits for more input, and
// Close sends whatever is left (221 after QUIT, 421 on a timeout).
type replyConn struct {
	net.Conn
	mu      sync.Mutex // guards pending: Close may come from another goroutine
	pending []byte     // written, not yet sent
}

func newReplyConn(c net.Conn) *replyConn { return &replyConn{Conn: c} }

func (c *replyConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, p...)
	if len(c.pending) >= maxPending {
		if err := c.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// maxPending bounds what waits for the next read; SMTP replies are far
// smaller, but a TLS handshake's records pass through here too.
const maxPending = 16 << 10

// flush sends what is pending; c.mu must be held.
func (c *replyConn) flush() error {
	if len(c.pending) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.pending)
	c.pending = c.pending[:0]
	return err
}

// Read sends the pending replies, then reads. A failed send is reported
// here: the server then ends the session as for any broken connection.
func (c *replyConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	err := c.flush()
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// closeFlushLimit bounds how long Close waits to send the last replies to a
// client that does not read.
const closeFlushLimit = 5 * time.Second

// Close sends the last replies (best effort) and closes the connection.
// When another goroutine is stuck sending (a client that stopped reading),
// it closes at once: that is what unblocks the sender.
func (c *replyConn) Close() error {
	if c.mu.TryLock() {
		if len(c.pending) > 0 {
			c.Conn.SetWriteDeadline(time.Now().Add(closeFlushLimit))
			c.flush()
		}
		c.mu.Unlock()
	}
	return c.Conn.Close()
}
