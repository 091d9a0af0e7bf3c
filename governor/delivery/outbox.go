package delivery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"kadenz/store"
)

// Outbox is the Transport used when no smarthost is configured: each
// released envelope becomes <dir>/<envelope ID>.eml, so someone trying
// Kadenz sees exactly what would have been sent. Like a final delivery
// agent (RFC 5321 4.4) it records the envelope on top of the message, as
// Return-Path and Delivered-To; the rest are the bytes an upstream would get.
type Outbox struct {
	dir string
}

// NewOutbox creates dir if needed.
func NewOutbox(dir string) (*Outbox, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("delivery: outbox: %w", err)
	}
	return &Outbox{dir: dir}, nil
}

// NewSender implements Transport.
func (o *Outbox) NewSender() Sender { return o }

// Close implements Sender.
func (o *Outbox) Close() error { return nil }

// Send writes one file per envelope.
func (o *Outbox) Send(_ context.Context, p Parcel) []error {
	errs := make([]error, len(p.Envelopes))
	for i, e := range p.Envelopes {
		e.From = p.From
		errs[i] = o.write(e, p)
	}
	return errs
}

// write writes the file atomically: a reader never sees half a message, and
// after a crash the file is either whole or absent.
func (o *Outbox) write(e store.Envelope, p Parcel) error {
	f, err := os.CreateTemp(o.dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	_, err = fmt.Fprintf(f, "Return-Path: <%s>\r\nDelivered-To: %s\r\n", e.From, e.To)
	if err == nil {
		err = p.copyMessage(f)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(o.dir, e.ID+".eml"))
	}
	if err != nil {
		return fmt.Errorf("writing to outbox: %w", err)
	}
	return nil
}
