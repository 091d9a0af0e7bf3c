// Command floor is a measuring stick for bench/relay.sh, not a product: the
// least a relay built on go-smtp can do. It accepts mail with go-smtp's
// server, keeps it in memory only (no disk, no fsync: a crash loses it), and
// forwards it with go-smtp's client over a fixed pool of reused upstream
// connections, as Kadenz's delivery workers do. What it costs per message
// is the floor under any relay on these libraries, durable or not; the
// benchmark runs it in the same run as Kadenz so the two can be compared.
//
// With -durable DIR it is the least a relay that keeps its word can do:
// each message is written to a journal in DIR (Kadenz's own, see
// durable.go) and fdatasynced before the 250, one write and one fdatasync
// for every group of messages waiting together, as Kadenz's group commit
// shares its commits. No index, no queue state, no lookups: only the disk
// work that the promise "accepted means stored" cannot do without.
//
//	go run ./bench/floor -listen 127.0.0.1:2526 -upstream 127.0.0.1:2527 [-durable DIR]
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

type message struct {
	from string
	to   []string
	body []byte
	seq  uint64 // its record's number in the journal (-durable)
}

type backend struct {
	out chan<- message
	jr  *durable // nil: nothing stored
}

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &session{out: b.out, jr: b.jr}, nil
}

type session struct {
	out chan<- message
	jr  *durable
	msg message
}

func (s *session) AuthPlain(string, string) error { return smtp.ErrAuthUnsupported }
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.msg = message{from: from}
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.to = append(s.msg.to, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		return err
	}
	s.msg.body = buf.Bytes()
	if s.jr != nil {
		if err := s.jr.store(&s.msg); err != nil {
			return err // not stored: the client gets a 4xx and keeps the message
		}
	}
	s.out <- s.msg
	return nil
}
func (s *session) Reset()        { s.msg = message{} }
func (s *session) Logout() error { return nil }

// forward sends messages from in over one reused connection, redialling
// after an error; a message that fails is reported and dropped.
func forward(upstream string, in <-chan message, jr *durable) {
	var c *smtp.Client
	for m := range in {
		err := errors.New("not connected")
		for try := 0; try < 3 && err != nil; try++ {
			if c == nil {
				if c, err = smtp.Dial(upstream); err != nil {
					c = nil
					time.Sleep(100 * time.Millisecond)
					continue
				}
				if err = c.Hello("floor.localhost"); err != nil {
					c.Close()
					c = nil
					continue
				}
			}
			if err = send(c, m); err != nil {
				c.Close()
				c = nil
			}
		}
		if err != nil {
			log.Printf("floor: dropped a message: %v", err)
		}
		if jr != nil {
			jr.finish(m)
		}
	}
	if c != nil {
		c.Quit()
	}
}

func send(c *smtp.Client, m message) error {
	if err := c.Mail(m.from, nil); err != nil {
		return err
	}
	for _, to := range m.to {
		if err := c.Rcpt(to, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(m.body); err != nil {
		return err
	}
	return w.Close()
}

func main() {
	listen := flag.String("listen", "127.0.0.1:2526", "SMTP listen `address`")
	upstream := flag.String("upstream", "", "where to forward, `host:port` (required)")
	workers := flag.Int("workers", 8, "upstream connections (Kadenz's default until session 4, now 16; kept at 8 so floor numbers stay comparable across sessions)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to `file` (to compare with Kadenz's /debug/pprof/profile)")
	durableDir := flag.String("durable", "", "write each message to a journal in `dir`, fdatasynced before the 250")
	flag.Parse()
	if *upstream == "" {
		fmt.Fprintln(os.Stderr, "floor: -upstream is required")
		os.Exit(2)
	}
	var jr *durable
	if *durableDir != "" {
		var err error
		if jr, err = openDurable(*durableDir); err != nil {
			log.Fatal(err)
		}
	}
	queue := make(chan message, 100000)
	for range *workers {
		go forward(*upstream, queue, jr)
	}
	srv := smtp.NewServer(backend{out: queue, jr: jr})
	srv.Domain = "floor.localhost"
	srv.MaxMessageBytes = 10 << 20
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				log.Print(err)
			}
		}()
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		log.Fatal(err)
	}
	if jr != nil {
		if err := jr.close(); err != nil {
			log.Print(err)
		}
	}
}
