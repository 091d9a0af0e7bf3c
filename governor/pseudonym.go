package governor

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"regexp"
	"strings"
)

// Pseudonymised logs (log.pseudonymise: true).
//
// A log handler in front of the configured one replaces every email
// address in attribute values — strings, errors, groups — with a keyed
// hash of its lower-cased form, keeping the domain:
// ann@example.com -> h-3f1c0a9b5e7d2c41@example.com. The same address
// gives the same pseudonym in every line and across restarts (the key is
// kept in the database), so an operator can still follow one recipient
// through the log, or find their lines by asking the daemon for the
// pseudonym; without the database the log names nobody. The domain stays
// because delivery problems are per domain. Messages (the fixed first
// argument of each log call) are not rewritten: they never carry data.

// addrPattern matches an addr-spec's usual form (RFC 5322 3.4.1 dot-atom
// local part and domain); quoted local parts are rare enough to ignore.
var addrPattern = regexp.MustCompile("[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@([A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)")

type pseudonymHandler struct {
	next slog.Handler
	key  []byte
}

func newPseudonymHandler(next slog.Handler, key []byte) slog.Handler {
	return pseudonymHandler{next: next, key: key}
}

func (h pseudonymHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h pseudonymHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, rec.Message, rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h pseudonymHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	mapped := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		mapped[i] = h.attr(a)
	}
	return pseudonymHandler{next: h.next.WithAttrs(mapped), key: h.key}
}

func (h pseudonymHandler) WithGroup(name string) slog.Handler {
	return pseudonymHandler{next: h.next.WithGroup(name), key: h.key}
}

func (h pseudonymHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.redact(v.String()))
	case slog.KindGroup:
		group := v.Group()
		mapped := make([]any, len(group))
		for i, g := range group {
			mapped[i] = h.attr(g)
		}
		return slog.Group(a.Key, mapped...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, h.redact(err.Error()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (h pseudonymHandler) redact(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return addrPattern.ReplaceAllStringFunc(s, h.pseudonym)
}

func (h pseudonymHandler) pseudonym(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	mac := hmac.New(sha256.New, h.key)
	mac.Write([]byte(strings.ToLower(addr)))
	return "h-" + hex.EncodeToString(mac.Sum(nil)[:8]) + strings.ToLower(addr[at:])
}
