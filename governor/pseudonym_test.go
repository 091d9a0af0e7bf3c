package governor

import (
	"bytes"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestPseudonymisedLogs(t *testing.T) {
	up := startUpstream(t, func(int) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<Ann@Example.test>: no such user"}
	})
	cfg := testConfig(t, up.addr)
	cfg.Log.Pseudonymise = true
	var logs syncBuffer
	r := startRelayWith(t, Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := submit(t, dial(t, r), "crm@shop.test", []string{"ann@example.test"}, testMessage); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the permanent failure", func() bool { return strings.Contains(logs.String(), "delivery failed") })
	r.log.With("rcpt", "ann@example.test").Info("grouped", slog.Group("g", "a", "ann@example.test"), "err", errors.New("to ann@example.test"))

	out := logs.String()
	if strings.Contains(strings.ToLower(out), "ann@example.test") || strings.Contains(out, "crm@shop.test") {
		t.Errorf("an address reached the log:\n%s", out)
	}
	// One pseudonym for ann, whatever the case and wherever it appears:
	// "to" on the failure, the upstream's error text, a With attribute,
	// a group and an error value.
	pseudonyms := regexp.MustCompile(`h-[0-9a-f]{16}@example\.test`).FindAllString(out, -1)
	distinct := map[string]bool{}
	for _, p := range pseudonyms {
		distinct[p] = true
	}
	if len(pseudonyms) < 5 || len(distinct) != 1 {
		t.Errorf("pseudonyms of ann: %v\n%s", pseudonyms, out)
	}
	if !regexp.MustCompile(`from=h-[0-9a-f]{16}@shop\.test`).MatchString(out) {
		t.Errorf("the sender is not pseudonymised with its domain kept:\n%s", out)
	}
}
